package validation

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorsError(t *testing.T) {
	tests := []struct {
		name string
		errs Errors
		want string
	}{
		{"empty", Errors{}, "invalid input: "},
		{"one field", Errors{"name": "enter a name"}, "invalid input: name: enter a name"},
		{"sorted by field", Errors{"b": "2", "c": "3", "a": "1"}, "invalid input: a: 1; b: 2; c: 3"},
		{"underscores and case sort bytewise", Errors{"pids_limit": "p", "memory_mb": "m", "Name": "N", "cpus": "c"},
			"invalid input: Name: N; cpus: c; memory_mb: m; pids_limit: p"},
		{"messages kept verbatim", Errors{"x": "has; semicolons: and colons"}, "invalid input: x: has; semicolons: and colons"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.errs.Error(); got != tt.want {
				t.Fatalf("Error() = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsErrorIsStable(t *testing.T) {
	e := Errors{}
	for i := range 30 {
		e[fmt.Sprintf("field%02d", i)] = fmt.Sprintf("message %d", i)
	}
	first := e.Error()
	// Map iteration order changes from call to call; the text must not.
	for range 100 {
		if got := e.Error(); got != first {
			t.Fatalf("Error() changed between calls:\n%s\n%s", first, got)
		}
	}
	// Built in another insertion order, the text is the same.
	f := Errors{}
	for i := 29; i >= 0; i-- {
		f[fmt.Sprintf("field%02d", i)] = fmt.Sprintf("message %d", i)
	}
	if f.Error() != first {
		t.Fatalf("insertion order changed Error():\n%s\n%s", first, f.Error())
	}
}

func TestErrorsAdd(t *testing.T) {
	tests := []struct {
		name string
		adds [][2]string
		want Errors
	}{
		{"one", [][2]string{{"name", "enter a name"}}, Errors{"name": "enter a name"}},
		{"first message wins", [][2]string{{"name", "first"}, {"name", "second"}, {"name", "third"}}, Errors{"name": "first"}},
		{"separate fields", [][2]string{{"name", "n"}, {"image", "i"}, {"name", "n2"}}, Errors{"name": "n", "image": "i"}},
		{"empty message still claims the field", [][2]string{{"x", ""}, {"x", "later"}}, Errors{"x": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Errors{}
			for _, a := range tt.adds {
				e.Add(a[0], a[1])
			}
			if len(e) != len(tt.want) {
				t.Fatalf("got %v; want %v", e, tt.want)
			}
			for k, v := range tt.want {
				if got, ok := e[k]; !ok || got != v {
					t.Fatalf("field %q = %q (present %v); want %q", k, got, ok, v)
				}
			}
		})
	}
}

func TestErrorsErr(t *testing.T) {
	if err := (Errors{}).Err(); err != nil {
		t.Fatalf("empty Errors.Err() = %#v; want a nil error", err)
	}
	var nilMap Errors
	if err := nilMap.Err(); err != nil {
		t.Fatalf("nil Errors.Err() = %#v; want a nil error", err)
	}
	e := Errors{"name": "bad"}
	err := e.Err()
	if err == nil {
		t.Fatal("non-empty Errors.Err() = nil")
	}
	var got Errors
	if !errors.As(fmt.Errorf("wrapped: %w", err), &got) {
		t.Fatalf("errors.As did not find Errors in %v", err)
	}
	if got["name"] != "bad" {
		t.Fatalf("recovered Errors = %v", got)
	}
}

func TestField(t *testing.T) {
	err := Field("directory", "already used")
	var got Errors
	if !errors.As(err, &got) {
		t.Fatalf("Field returned %T; want Errors", err)
	}
	if len(got) != 1 || got["directory"] != "already used" {
		t.Fatalf("Field = %v; want only directory", got)
	}
	if want := "invalid input: directory: already used"; err.Error() != want {
		t.Fatalf("Error() = %q; want %q", err.Error(), want)
	}
}
