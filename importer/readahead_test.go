package importer

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// TestReadAheadKeepsTheStream checks that what a readAhead hands out is
// the source, byte for byte, then the source's error, whatever the sizes
// of the source's reads and of the caller's.
func TestReadAheadKeepsTheStream(t *testing.T) {
	boom := errors.New("connection reset")
	for _, size := range []int{0, 1, readAheadSize - 1, readAheadSize, readAheadSize + 1, 7*readAheadSize/2 + 3} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*5 + i>>11)
		}
		sources := map[string]func() io.Reader{
			"whole":      func() io.Reader { return bytes.NewReader(data) },
			"half reads": func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
			"data then error": func() io.Reader {
				return io.MultiReader(iotest.DataErrReader(bytes.NewReader(data)), iotest.ErrReader(boom))
			},
		}
		for name, src := range sources {
			ra := newReadAhead(src())
			got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, int64(size))))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%d bytes, %s: read %d bytes, %v; want the source", size, name, len(got), err)
			}
			// Then the source's end, or its error.
			var rest [1]byte
			n, err := ra.Read(rest[:])
			want := io.EOF
			if name == "data then error" {
				want = boom
			}
			if n != 0 || !errors.Is(err, want) {
				t.Errorf("%d bytes, %s: after the data, Read = %d, %v; want 0, %v", size, name, n, err, want)
			}
			ra.stop()
		}
	}
}

// TestReadAheadStopDoesNotWait checks that stop returns while the source
// blocks, and that the goroutine ends once the source answers.
func TestReadAheadStopDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	ra := newReadAhead(pr)
	stopped := make(chan struct{})
	go func() {
		ra.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop waited for a source that blocks")
	}
	// The goroutine is in its read: the pipe's writer is not left blocked
	// once it writes, and the goroutine ends after that read.
	done := make(chan error, 1)
	go func() {
		_, err := pw.Write(make([]byte, readAheadSize))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the goroutine did not read after stop")
	}
	pw.Close()
}
