package bus_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"aicode/services/bus"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/services/tasks/streamjson"
)

// Task updates cross replicas as JSON: every event the reader produces,
// known, unknown, malformed or oversized, arrives as it left.
func TestTaskUpdatesRoundTrip(t *testing.T) {
	var lines bytes.Buffer
	files, _ := filepath.Glob("../tasks/streamjson/testdata/*.jsonl")
	if len(files) == 0 {
		t.Fatal("no stream-json samples found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines.Write(b)
		lines.WriteByte('\n')
	}
	// Kinds the samples may lack: a type and a block the reader does not
	// know, a line that is not JSON, one with invalid UTF-8, one too long.
	lines.WriteString(`{"type":"brand_new","subtype":"x","payload":{"k":[1,2,3]},"session_id":"s"}` + "\n")
	lines.WriteString(`{"type":"assistant","message":{"id":"m","role":"assistant","content":[{"type":"hologram","data":{"z":  1}},{"type":"tool_use","id":"tu","name":"Bash","input":{"command":"ls"}}]}}` + "\n")
	lines.WriteString("this is not json\n")
	lines.WriteString("{\"type\":\"\xff\xfe\"}\n")
	lines.WriteString(`{"type":"user","pad":"` + strings.Repeat("x", 5000) + `"}` + "\n")

	r := streamjson.NewReader(&lines, 4096)
	codec := bus.JSON[tasks.Update]()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	kinds := map[string]bool{}
	for seq := int64(1); ; seq++ {
		ev, err := r.Next()
		if err != nil {
			break
		}
		kinds[ev.Type] = true
		in := tasks.Update{Event: &tasks.Event{Seq: seq, At: at, End: seq * 100, Event: ev}}
		data, err := codec.Encode(in)
		if err != nil {
			t.Fatalf("event %d (%s): encode: %v", seq, ev.Type, err)
		}
		v, err := codec.Decode(data)
		if err != nil {
			t.Fatalf("event %d (%s): decode: %v", seq, ev.Type, err)
		}
		out, ok := v.(tasks.Update)
		if !ok || out.Event == nil || out.Task != nil {
			t.Fatalf("event %d decoded as %#v", seq, v)
		}
		if !reflect.DeepEqual(normalize(*in.Event), normalize(*out.Event)) {
			a, _ := json.MarshalIndent(in.Event, "", " ")
			b, _ := json.MarshalIndent(out.Event, "", " ")
			t.Fatalf("event %d (%s) changed on the way:\n%s\n---\n%s", seq, ev.Type, a, b)
		}
		if !bytes.Equal(in.Event.Raw, out.Event.Raw) {
			t.Fatalf("event %d: raw line changed", seq)
		}
	}
	for _, k := range []string{"system", "assistant", "user", "result", "brand_new", streamjson.TypeMalformed, streamjson.TypeOversized} {
		if !kinds[k] {
			t.Errorf("no %q event was tried", k)
		}
	}

	started := at.Add(time.Second)
	code := 3
	task := store.Task{ID: "t1", WorkspaceID: "w1", Status: store.TaskRunning, StartedAt: &started, ExitCode: &code, CostUSD: 0.25, CreatedAt: at, UpdatedAt: at}
	data, err := codec.Encode(tasks.Update{Task: &task})
	if err != nil {
		t.Fatal(err)
	}
	v, err := codec.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(tasks.Update); got.Event != nil || !reflect.DeepEqual(*got.Task, task) {
		t.Fatalf("task update arrived as %#v", got)
	}
}

// normalize makes JSON-equivalent raw fragments equal: encoding/json
// compacts json.RawMessage, and a missing fragment comes back as null.
func normalize(e tasks.Event) tasks.Event {
	if e.Message != nil {
		m := *e.Message
		m.Content = append([]streamjson.Block(nil), m.Content...)
		for i := range m.Content {
			m.Content[i].Input = compact(m.Content[i].Input)
			m.Content[i].Raw = compact(m.Content[i].Raw)
		}
		e.Message = &m
	}
	return e
}

func compact(r json.RawMessage) json.RawMessage {
	if len(r) == 0 || string(r) == "null" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, r); err != nil {
		return r
	}
	return b.Bytes()
}
