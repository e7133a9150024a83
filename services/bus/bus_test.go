package bus

import (
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// drain returns everything queued on s right now, without waiting.
func drain(s *Subscription) []any {
	var out []any
	for {
		select {
		case m := <-s.C():
			out = append(out, m)
		default:
			return out
		}
	}
}

func topics(b *Bus) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

func TestPublishSubscribeByTopic(t *testing.T) {
	type sub struct {
		topic  string
		buffer int
	}
	tests := []struct {
		name     string
		subs     []sub
		publish  [][2]string // topic, message
		received [][]any     // per subscriber, in order
	}{
		{
			name:     "one subscriber gets its topic",
			subs:     []sub{{"a", 10}},
			publish:  [][2]string{{"a", "1"}, {"a", "2"}},
			received: [][]any{{"1", "2"}},
		},
		{
			name:     "every subscriber of a topic gets every message",
			subs:     []sub{{"a", 10}, {"a", 10}, {"a", 10}},
			publish:  [][2]string{{"a", "1"}, {"a", "2"}, {"a", "3"}},
			received: [][]any{{"1", "2", "3"}, {"1", "2", "3"}, {"1", "2", "3"}},
		},
		{
			name:     "no leakage across topics",
			subs:     []sub{{"a", 10}, {"b", 10}, {"ab", 10}},
			publish:  [][2]string{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}, {"c", "c1"}, {"ab", "ab1"}},
			received: [][]any{{"a1", "a2"}, {"b1"}, {"ab1"}},
		},
		{
			name:     "topics are case sensitive",
			subs:     []sub{{"Topic", 10}, {"topic", 10}},
			publish:  [][2]string{{"topic", "lower"}, {"Topic", "upper"}},
			received: [][]any{{"upper"}, {"lower"}},
		},
		{
			name:     "empty topic is a topic",
			subs:     []sub{{"", 10}, {"a", 10}},
			publish:  [][2]string{{"", "e"}, {"a", "a"}},
			received: [][]any{{"e"}, {"a"}},
		},
		{
			name:     "nothing published, nothing received",
			subs:     []sub{{"a", 10}},
			received: [][]any{nil},
		},
		{
			name:     "publishing without subscribers is fine",
			subs:     nil,
			publish:  [][2]string{{"nobody", "x"}},
			received: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New()
			var subs []*Subscription
			for _, s := range tt.subs {
				subs = append(subs, b.Subscribe(s.topic, s.buffer))
			}
			for _, p := range tt.publish {
				b.Publish(p[0], p[1])
			}
			for i, s := range subs {
				if got := drain(s); !reflect.DeepEqual(got, tt.received[i]) {
					t.Errorf("subscriber %d (%s) received %v; want %v", i, tt.subs[i].topic, got, tt.received[i])
				}
				if s.Lagged() {
					t.Errorf("subscriber %d lagged without overflowing", i)
				}
			}
		})
	}
}

func TestMessagesAreDeliveredAsIs(t *testing.T) {
	b := New()
	s := b.Subscribe("t", 4)
	type change struct{ ID string }
	msgs := []any{change{ID: "w1"}, &change{ID: "w2"}, 42, nil}
	for _, m := range msgs {
		b.Publish("t", m)
	}
	if got := drain(s); !reflect.DeepEqual(got, msgs) {
		t.Fatalf("received %v; want %v", got, msgs)
	}
}

func TestBoundedQueueDropsOldest(t *testing.T) {
	tests := []struct {
		name       string
		buffer     int
		publish    int
		want       []any
		wantLagged bool
	}{
		{"fits exactly", 3, 3, []any{0, 1, 2}, false},
		{"one too many drops the first", 3, 4, []any{1, 2, 3}, true},
		{"many too many keeps the newest", 3, 10, []any{7, 8, 9}, true},
		{"buffer of one keeps the last", 1, 5, []any{4}, true},
		{"zero buffer means one", 0, 2, []any{1}, true},
		{"negative buffer means one", -5, 2, []any{1}, true},
		{"zero buffer holds one without lagging", 0, 1, []any{0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New()
			s := b.Subscribe("t", tt.buffer)
			for i := range tt.publish {
				b.Publish("t", i)
			}
			if got := drain(s); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("received %v; want %v", got, tt.want)
			}
			if got := s.Lagged(); got != tt.wantLagged {
				t.Fatalf("Lagged() = %v; want %v", got, tt.wantLagged)
			}
			if s.Lagged() {
				t.Fatal("Lagged() did not clear after it was read")
			}
		})
	}
}

func TestLaggedClearsAndSetsAgain(t *testing.T) {
	b := New()
	s := b.Subscribe("t", 2)
	other := b.Subscribe("t", 100)

	for i := range 5 {
		b.Publish("t", i)
	}
	if !s.Lagged() {
		t.Fatal("not lagged after overflowing")
	}
	if s.Lagged() {
		t.Fatal("Lagged stayed set after it was read")
	}
	if got := drain(s); !reflect.DeepEqual(got, []any{3, 4}) {
		t.Fatalf("received %v; want [3 4]", got)
	}
	// Reading everything does not by itself set or clear anything new.
	b.Publish("t", 5)
	if s.Lagged() {
		t.Fatal("lagged after a message that fit")
	}
	b.Publish("t", 6)
	b.Publish("t", 7)
	if !s.Lagged() {
		t.Fatal("not lagged after overflowing a second time")
	}
	if got := drain(s); !reflect.DeepEqual(got, []any{6, 7}) {
		t.Fatalf("received %v; want [6 7]", got)
	}
	// The roomy subscriber lost nothing.
	if other.Lagged() {
		t.Fatal("a subscriber with room was marked lagged")
	}
	if got := drain(other); len(got) != 8 {
		t.Fatalf("roomy subscriber received %d messages; want 8", len(got))
	}
}

func TestStuckSubscriberDoesNotBlock(t *testing.T) {
	b := New()
	stuck := b.Subscribe("t", 1) // never read
	stuck2 := b.Subscribe("t", 3)
	reader := b.Subscribe("t", 16)
	const n = 2000

	var got []any
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for len(got) < n {
			select {
			case m := <-reader.C():
				got = append(got, m)
			case <-time.After(5 * time.Second):
				return
			}
		}
	}()

	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := range n {
			b.Publish("t", i)
			// Let the reader keep up so it loses nothing; the stuck ones
			// still overflow constantly.
			for len(reader.C()) > 8 {
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()

	select {
	case <-pubDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that never reads")
	}
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the reading subscriber was starved")
	}
	if len(got) != n {
		t.Fatalf("reader received %d messages; want %d", len(got), n)
	}
	for i, m := range got {
		if m != i {
			t.Fatalf("reader message %d = %v; want %d (order)", i, m, i)
		}
	}
	if reader.Lagged() {
		t.Fatal("the reader was marked lagged")
	}
	if !stuck.Lagged() || !stuck2.Lagged() {
		t.Fatal("stuck subscribers were not marked lagged")
	}
	if g := drain(stuck); !reflect.DeepEqual(g, []any{n - 1}) {
		t.Fatalf("stuck subscriber holds %v; want the newest [%d]", g, n-1)
	}
	if g := drain(stuck2); !reflect.DeepEqual(g, []any{n - 3, n - 2, n - 1}) {
		t.Fatalf("stuck subscriber holds %v; want the newest three", g)
	}
}

func TestPublishIsNonBlockingWithFullQueues(t *testing.T) {
	b := New()
	for range 50 {
		b.Subscribe("t", 1)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			b.Publish("t", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to full queues blocked")
	}
}

func TestCloseRemovesSubscription(t *testing.T) {
	b := New()
	if n := b.Subscribers("t"); n != 0 {
		t.Fatalf("Subscribers before any = %d", n)
	}
	s1 := b.Subscribe("t", 4)
	s2 := b.Subscribe("t", 4)
	s3 := b.Subscribe("u", 4)

	steps := []struct {
		name     string
		do       func()
		t, u     int
		nTopics  int
		deliverT []bool // s1, s2 receive a message published to t now
	}{
		{"all open", func() {}, 2, 1, 2, []bool{true, true}},
		{"close s1", s1.Close, 1, 1, 2, []bool{false, true}},
		{"close s1 again", s1.Close, 1, 1, 2, []bool{false, true}},
		{"close s2", s2.Close, 0, 1, 1, []bool{false, false}},
		{"close s2 again", s2.Close, 0, 1, 1, []bool{false, false}},
		{"close s3", s3.Close, 0, 0, 0, []bool{false, false}},
	}
	for _, st := range steps {
		st.do()
		if n := b.Subscribers("t"); n != st.t {
			t.Fatalf("%s: Subscribers(t) = %d; want %d", st.name, n, st.t)
		}
		if n := b.Subscribers("u"); n != st.u {
			t.Fatalf("%s: Subscribers(u) = %d; want %d", st.name, n, st.u)
		}
		if n := topics(b); n != st.nTopics {
			t.Fatalf("%s: %d topics kept; want %d (empty topics are removed)", st.name, n, st.nTopics)
		}
		drain(s1)
		drain(s2)
		b.Publish("t", st.name)
		for i, s := range []*Subscription{s1, s2} {
			got := len(drain(s)) == 1
			if got != st.deliverT[i] {
				t.Fatalf("%s: subscriber %d received = %v; want %v", st.name, i+1, got, st.deliverT[i])
			}
		}
	}

	// Closing one subscription does not disturb a new one on the same topic.
	s4 := b.Subscribe("t", 1)
	s1.Close()
	if n := b.Subscribers("t"); n != 1 {
		t.Fatalf("a stale Close removed a new subscriber: Subscribers(t) = %d", n)
	}
	s4.Close()
}

func TestConcurrentCloseIsSafe(t *testing.T) {
	b := New()
	s := b.Subscribe("t", 1)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Close()
		}()
	}
	wg.Wait()
	if n := b.Subscribers("t"); n != 0 {
		t.Fatalf("Subscribers = %d; want 0", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	b := New()
	topicNames := []string{"t0", "t1", "t2"}
	stop := make(chan struct{})
	var pubs, subs sync.WaitGroup
	var received atomic.Int64

	for p := range 4 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b.Publish(topicNames[(p+i)%len(topicNames)], fmt.Sprintf("p%d-%d", p, i))
				runtime.Gosched()
			}
		}()
	}
	for g := range 8 {
		subs.Add(1)
		go func() {
			defer subs.Done()
			for i := range 30 {
				topic := topicNames[(g+i)%len(topicNames)]
				s := b.Subscribe(topic, 1+i%4)
				_ = b.Subscribers(topic)
				for range i % 5 {
					select {
					case m := <-s.C():
						if str, ok := m.(string); !ok || str == "" {
							t.Errorf("unexpected message %v", m)
						}
						received.Add(1)
					case <-time.After(time.Millisecond):
					}
				}
				s.Lagged()
				s.Close()
				if i%7 == 0 {
					s.Close()
				}
			}
		}()
	}
	subs.Wait()
	close(stop)
	pubs.Wait()
	for _, topic := range topicNames {
		if n := b.Subscribers(topic); n != 0 {
			t.Errorf("Subscribers(%s) = %d after everyone closed", topic, n)
		}
	}
	if n := topics(b); n != 0 {
		t.Errorf("%d topics left after everyone closed", n)
	}
	if received.Load() == 0 {
		t.Error("no subscriber received anything while publishers ran")
	}
}
