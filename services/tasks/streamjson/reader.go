package streamjson

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

const (
	// DefaultMaxLine bounds one line when NewReader is given no limit. The
	// CLI inlines whole tool inputs and results (a Write of a large file),
	// so lines of several MiB are legitimate.
	DefaultMaxLine = 64 << 20
	// OversizedPrefix is how much of an oversized line is kept in Raw.
	OversizedPrefix = 64 << 10

	readBufferSize = 64 << 10
)

// Reader reads the CLI's stream-json output: one JSON object per line.
// It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	line    []byte // a line being assembled across buffer refills
	wire    wireEvent
	intern  map[string]string
}

// NewReader reads events from r. Lines longer than maxLine bytes are
// neither parsed nor held in memory whole; they become TypeOversized
// events. maxLine <= 0 means DefaultMaxLine.
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Reader{br: bufio.NewReaderSize(r, readBufferSize), maxLine: maxLine, intern: map[string]string{}}
}

// Next returns the next event, or io.EOF after the last one. A final line
// without a newline is still an event. Errors of the underlying reader are
// returned as they are; a partly read line is then lost.
func (r *Reader) Next() (Event, error) {
	for {
		raw, size, err := r.readLine()
		if err != nil {
			return Event{}, err
		}
		if size > r.maxLine {
			return Event{Type: TypeOversized, Raw: raw, Size: size}, nil
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		return r.parse(raw), nil
	}
}

// readLine returns the next line without its terminator ("\n" or "\r\n")
// and its full size. Once a line exceeds maxLine only its first
// OversizedPrefix bytes are kept while the rest is read and thrown away,
// so memory stays bounded by maxLine whatever the input.
func (r *Reader) readLine() ([]byte, int, error) {
	r.line = r.line[:0]
	size := 0
	discarding := false
	var lastByte byte
	for first := true; ; first = false {
		chunk, err := r.br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && err != io.EOF && !full {
			return nil, 0, err
		}
		if err == io.EOF && first && len(chunk) == 0 {
			return nil, 0, io.EOF
		}
		if err == nil {
			chunk = chunk[:len(chunk)-1]
		}
		if len(chunk) > 0 {
			lastByte = chunk[len(chunk)-1]
		}
		size += len(chunk)

		if first && !full {
			// The common case: the whole line sat in the buffer. One
			// exact-size copy gives the Event its own Raw.
			out := trimCR(chunk)
			n := len(out)
			if n > r.maxLine {
				out = out[:min(n, OversizedPrefix)]
			}
			return append([]byte(nil), out...), n, nil
		}

		switch {
		case discarding:
			if keep := OversizedPrefix - len(r.line); keep > 0 {
				r.line = append(r.line, chunk[:min(keep, len(chunk))]...)
			}
		case size > r.maxLine+1: // +1: the byte may be the '\r' of a CRLF
			discarding = true
			// Copy the prefix to a small slice so that the large buffer
			// gathered so far can be collected.
			prefix := make([]byte, 0, OversizedPrefix)
			prefix = append(prefix, r.line[:min(len(r.line), OversizedPrefix)]...)
			if keep := OversizedPrefix - len(prefix); keep > 0 {
				prefix = append(prefix, chunk[:min(keep, len(chunk))]...)
			}
			r.line = prefix
		default:
			r.line = append(r.line, chunk...)
		}
		if full {
			continue
		}

		if lastByte == '\r' {
			size--
		}
		// The assembled slice is handed over (or dropped): lines this
		// long are rare, and keeping their buffer would pin its memory.
		out := r.line[:min(len(r.line), size)]
		r.line = nil
		switch {
		case size > r.maxLine && len(out) > OversizedPrefix:
			out = append([]byte(nil), out[:OversizedPrefix]...)
		case cap(out) > len(out)+len(out)/4:
			// append's growth can leave up to twice the line's size
			// behind it; a stored event should not pin that either.
			out = append([]byte(nil), out...)
		}
		return out, size, nil
	}
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func (r *Reader) parse(raw []byte) Event {
	ev := Event{Raw: raw, Size: len(raw)}
	i := 0
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r') {
		i++
	}
	if raw[i] != '{' {
		ev.Type = TypeMalformed
		if err := json.Unmarshal(raw, new(json.RawMessage)); err != nil {
			ev.Err = err.Error()
		} else {
			ev.Err = "not a JSON object"
		}
		return ev
	}
	w := &r.wire
	*w = wireEvent{}
	if fastDecode(raw, w, r.intern) {
		w.fill(&ev)
		return ev
	}
	return r.parseSlow(raw)
}

// parseSlow decodes a JSON object line with encoding/json: the reference
// behaviour the fast path must match.
func (r *Reader) parseSlow(raw []byte) Event {
	ev := Event{Raw: raw, Size: len(raw)}
	w := &r.wire
	*w = wireEvent{}
	err := json.Unmarshal(raw, w)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		ev.Type, ev.Err = TypeMalformed, err.Error()
		return ev
	}
	// On a field of an unexpected JSON type encoding/json still decodes
	// every other field, so the event is kept with what it has.
	w.fill(&ev)
	if typeErr != nil || hasUnknownBlock(ev.Message) {
		if repairMessage(raw, &ev) && typeErr != nil && strings.HasPrefix(typeErr.Field, "message") {
			typeErr = nil
		}
	}
	if typeErr != nil {
		ev.Err = typeErr.Error()
	}
	return ev
}

func hasUnknownBlock(m *Message) bool {
	if m == nil {
		return false
	}
	for i := range m.Content {
		if !knownBlock(m.Content[i].Type) {
			return true
		}
	}
	return false
}
