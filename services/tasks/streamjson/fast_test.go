package streamjson

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// parseBoth decodes line through the fast path and through encoding/json
// and reports whether the fast path took it.
func parseBoth(line []byte) (fast, slow Event, took bool) {
	r := &Reader{}
	var w wireEvent
	took = fastDecode(line, &w, map[string]string{"assistant": "assistant"})
	if took {
		fast = Event{Raw: line, Size: len(line)}
		w.fill(&fast)
	}
	slow = r.parseSlow(line)
	return fast, slow, took
}

func samples(t testing.TB) [][]byte {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	var out [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				out = append(out, l)
			}
		}
	}
	for _, l := range []string{
		`{"type":"assistant","message":{"id":"m1","role":"assistant","content":[{"type":"text","text":"hi"},{"type":"server_widget","widget":{"a":[1,2]}},{"type":"thinking","thinking":"hmm"},null]},"parent_tool_use_id":"toolu_parent"}`,
		`{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"one"},{"type":"image","source":{}}]}]}}`,
		`{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":{"odd":1}},{"type":"tool_result","content":null},{"type":"tool_result","content":7}]}}`,
		`{"type":"system","subtype":"permission_denied","tool_name":"Write","message":"no \u00e9 \"quoted\""}`,
		`{"type":"result","subtype":"error_max_turns","is_error":true,"permission_denials":[{"tool_name":"A"},null],"usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":3,"cache_read_input_tokens":4,"extra":{"x":[true,false,null,-1.5e3]}},"total_cost_usd":0.125,"errors":["a","b"]}`,
		`{"type":"stream_event","event":{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}},"session_id":"s"}`,
		`{"type":"stream_event","event":{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":5}}}}`,
		`{"type":"stream_event","event":null}`,
		`{"type":"assistant","message":null,"usage":null,"error":"server_error"}`,
		`{"Type":"assistant"}`,
		`{"type":"result","num_turns":1.5}`,
		`{"type":"result","num_turns":"x","result":"y"}`,
		`{"type":"x","a":01}`,
		`{"type":"x"} trailing`,
		`{"type":"x","s":"bad \x01 control"}`,
		`{"type":"x","s":"` + "\xff" + `"}`,
		`{"type":"x","type":"y"}`,
		`{"type":"user","message":{"content":"plain"}}`,
		` {"type":"x" , "n" : [ 1 , { } , [ ] ] } `,
	} {
		out = append(out, []byte(l))
	}
	return out
}

func TestFastPathMatchesEncodingJSON(t *testing.T) {
	took := 0
	all := samples(t)
	for _, line := range all {
		fast, slow, ok := parseBoth(line)
		if !ok {
			continue
		}
		took++
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("fast and encoding/json differ for %.300s\nfast %+v\nslow %+v", line, fast, slow)
		}
	}
	// Every line the CLI printed must take the fast path.
	if took < len(all)-10 {
		t.Errorf("the fast path took only %d of %d lines", took, len(all))
	}
	for _, line := range samples(t) {
		if bytes.HasPrefix(line, []byte(`{"type"`)) && bytes.Contains(line, []byte(`"session_id"`)) {
			if _, _, ok := parseBoth(line); !ok {
				t.Errorf("a recorded line left the fast path: %.300s", line)
			}
		}
	}
}

func FuzzFastPath(f *testing.F) {
	for _, l := range samples(f) {
		if len(l) < 4096 {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fast, slow, ok := parseBoth(line)
		if ok && !reflect.DeepEqual(fast, slow) {
			t.Errorf("fast and encoding/json differ for %q\nfast %+v\nslow %+v", line, fast, slow)
		}
	})
}
