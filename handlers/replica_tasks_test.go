package handlers_test

import (
	"bufio"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/miniotest"
)

// A task watched from a replica that does not run it: the page opened
// mid-run shows the history (a checkpoint the runner writes to the shared
// object store when asked over Redis), and the live stream then carries
// every event, in order, with none missing or repeated, to the end.
func TestReplicasWatchATaskRunningElsewhere(t *testing.T) {
	mio := miniotest.Shared(t)
	bucket := mio.BucketName(t)
	env := map[string]string{
		"ANTHROPIC_API_KEY":       testAPIKey,
		"AICODE_MINIO_ENDPOINT":   mio.Endpoint,
		"AICODE_MINIO_ACCESS_KEY": mio.AccessKey,
		"AICODE_MINIO_SECRET_KEY": mio.SecretKey,
		"AICODE_MINIO_BUCKET":     bucket,
	}
	image := testutil.BusyboxImage(t)
	rs := testutil.StartReplicas(t, testutil.RedisURL(t), testutil.Options{Image: image, Env: env}, testutil.Options{Image: image, Env: env})
	admin := testutil.Setup(t, rs[0].URL, "admin", adminPW)
	w := createWorkspace(t, rs[0], admin, url.Values{"name": {testutil.UniqueName("replview")}})
	w = waitStatus(t, rs[0], w.ID, store.StatusRunning, 60*time.Second)
	// 60 assistant messages over about 6 s, then the result.
	const n = 60
	script := `#!/bin/sh
echo '{"type":"system","subtype":"init","session_id":"s-1","model":"m-1","tools":[],"permissionMode":"acceptEdits","cwd":"/workspace"}'
i=1
while [ $i -le ` + strconv.Itoa(n) + ` ]; do
  echo '{"type":"assistant","message":{"id":"m'$i'","type":"message","role":"assistant","content":[{"type":"text","text":"line-'$i'"}]}}'
  i=$((i+1))
  usleep 100000
done
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","total_cost_usd":0.01,"duration_ms":6000,"usage":{"input_tokens":1,"output_tokens":1},"session_id":"s-1"}'
`
	installStandIn(t, rs[0], w.ContainerID, script)
	e := &taskEnv{s: rs[0], admin: admin, ws: w}
	id := e.queue(t, "watch me", nil)

	// Wait until a few events are out, then find the replica not running it.
	var tk store.Task
	waitUntil(t, "the task to be running", 2*time.Minute, func() bool {
		var err error
		tk, err = rs[0].App.Store.GetTask(t.Context(), id)
		if err == nil && tk.Status.Final() {
			t.Fatalf("the task ended before it was watched: %s %q", tk.Status, tk.Detail)
		}
		return err == nil && tk.Status == store.TaskRunning && tk.Runner != ""
	})
	time.Sleep(2 * time.Second) // some events out
	other := rs[0]
	if tk.Runner == "r0" {
		other = rs[1]
	}
	viewer := on(t, admin, other)
	page := viewer.Get("/workspaces/" + w.ID + "/tasks/" + id)
	if page.Status != http.StatusOK || !regexp.MustCompile(`\bline-5\b`).MatchString(page.Body) {
		t.Fatalf("the page on the other replica (runner %s) lacks the history so far: %d", tk.Runner, page.Status)
	}

	// The live stream from the other replica, from the start.
	req, _ := http.NewRequest(http.MethodGet, other.URL+"/workspaces/"+w.ID+"/tasks/"+id+"/stream", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := viewer.HTTP.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream on the other replica: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var ids []int
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				k, _ := strconv.Atoi(v)
				ids = append(ids, k)
			}
			if line == "event: end" {
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the stream never ended; ids so far: %v", ids)
	}
	if len(ids) != n+2 {
		t.Fatalf("got %d events, want %d: %v", len(ids), n+2, ids)
	}
	for i, k := range ids {
		if k != i+1 {
			t.Fatalf("event %d has id %d: %v", i, k, ids)
		}
	}
}
