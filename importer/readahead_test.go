package importer

import (
	"bytes"
	"errors"
	"io"
	"sync"
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
			ra.Stop()
		}
	}
}

// enteredReader closes entered when its first Read begins.
type enteredReader struct {
	r       io.Reader
	entered chan struct{}
	once    sync.Once
}

func (e *enteredReader) Read(p []byte) (int, error) {
	e.once.Do(func() { close(e.entered) })
	return e.r.Read(p)
}

// TestReadAheadStopDoesNotWait checks that Stop returns while the source
// blocks in a read, and that the goroutine ends once that read returns.
func TestReadAheadStopDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	src := &enteredReader{r: pr, entered: make(chan struct{})}
	ra := newReadAhead(src)
	<-src.entered
	stopped := make(chan struct{})
	go func() {
		ra.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited for a source that blocks")
	}
	// The goroutine is in its read: the pipe's writer is not left blocked
	// once it writes, and the goroutine ends after that read.
	done := make(chan error, 1)
	go func() {
		_, err := pw.Write(make([]byte, readAheadSize))
		done <- err
	}()
	ended := make(chan struct{})
	go func() {
		ra.Wait()
		close(ended)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the goroutine did not read after Stop")
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the goroutine did not end after its read")
	}
	pw.Close()
}
