// Package validation carries field-level input errors from services to the
// handlers that re-render forms with them.
package validation

import (
	"sort"
	"strings"
)

// Errors maps a form field name to a message for the user. It is an error
// so services can return it directly; handlers answer it with 422.
type Errors map[string]string

func (e Errors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+e[k])
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Add records msg for field unless the field already has a message, so the
// first (most basic) problem is the one shown.
func (e Errors) Add(field, msg string) {
	if _, ok := e[field]; !ok {
		e[field] = msg
	}
}

// Err returns e as an error, or nil when it is empty.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Field is a convenience for a single-field error.
func Field(field, msg string) error { return Errors{field: msg} }
