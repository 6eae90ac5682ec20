package chunks_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pullkit/pullkit/internal/chunks"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readFull is the fill of a Source that reads r.
func readFull(r io.Reader) func([]byte) (int, error) {
	return func(buf []byte) (int, error) {
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	}
}

// TestSourceStagesAndReader checks that the reader gets the stream whole
// and in order, that every stage sees it whole and in order, and that the
// pipe fills no more buffers than it was given.
func TestSourceStagesAndReader(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 4097, 100_000} {
		data := randomBytes(size)
		src := bytes.NewReader(data)
		p := chunks.New(3, 4096)
		buffers := map[*byte]bool{}
		p.Source(func(buf []byte) (int, error) {
			buffers[&buf[:1][0]] = true
			return readFull(src)(buf)
		})
		h1, h2 := sha256.New(), sha256.New()
		var order []int
		p.Then(func(b []byte) { h1.Write(b); order = append(order, len(b)) })
		p.Then(func(b []byte) { h2.Write(b) })

		// Read in odd sizes, so that chunks are split across reads.
		var got []byte
		buf := make([]byte, 1000)
		for {
			n, err := p.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		p.Wait()
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: read %d bytes, not the stream", size, len(got))
		}
		want := sha256.Sum256(data)
		if !bytes.Equal(h1.Sum(nil), want[:]) || !bytes.Equal(h2.Sum(nil), want[:]) {
			t.Errorf("size %d: a stage did not see the stream in order", size)
		}
		for i, n := range order[:max(len(order)-1, 0)] {
			if n != 4096 {
				t.Errorf("size %d: chunk %d has %d bytes; only the last may be short", size, i, n)
			}
		}
		if len(buffers) > 3 {
			t.Errorf("size %d: %d buffers filled, want at most 3", size, len(buffers))
		}
		if _, err := p.Read(buf); err != io.EOF {
			t.Errorf("size %d: Read after the end = %v, want io.EOF", size, err)
		}
		p.Recycle()
	}
}

// TestSourceError checks that the bytes before an error are read, then
// the error, at every later call too.
func TestSourceError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	p := chunks.New(2, 8)
	p.Source(func(buf []byte) (int, error) {
		calls++
		if calls == 3 {
			return copy(buf, "tail"), boom
		}
		return copy(buf, "12345678"), nil
	})
	got, err := io.ReadAll(p)
	if !errors.Is(err, boom) {
		t.Fatalf("ReadAll error = %v, want %v", err, boom)
	}
	if string(got) != "1234567812345678tail" {
		t.Errorf("read %q before the error", got)
	}
	if _, err := p.Read(make([]byte, 4)); !errors.Is(err, boom) {
		t.Errorf("Read after the error = %v, want %v", err, boom)
	}
	if err := p.Discard(); !errors.Is(err, boom) {
		t.Errorf("Discard = %v, want %v", err, boom)
	}
	p.Wait()
	if calls != 3 {
		t.Errorf("fill called %d times after its error, want 3 in all", calls)
	}
}

// TestWrite checks a pipe fed by Write: the reader on another goroutine
// gets every byte, in order, then io.EOF after CloseWrite.
func TestWrite(t *testing.T) {
	data := randomBytes(50_000)
	p := chunks.New(2, 1024)
	var got []byte
	var rerr error
	var wg sync.WaitGroup
	wg.Go(func() { got, rerr = io.ReadAll(p) })
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 777)
		if !p.Write(rest[:n]) {
			t.Fatal("Write reported a stopped pipe")
		}
		rest = rest[n:]
	}
	p.CloseWrite()
	wg.Wait()
	if rerr != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d written", len(got), rerr, len(data))
	}
	p.Recycle()
}

// TestCloseWriteError checks that the reader of a written stream gets what
// was written, then the error CloseWriteError ended it with.
func TestCloseWriteError(t *testing.T) {
	p := chunks.New(2, 1024)
	errEnd := errors.New("the writer gave up")
	var wg sync.WaitGroup
	wg.Go(func() {
		p.Write([]byte("some bytes"))
		p.CloseWriteError(errEnd)
	})
	got, err := io.ReadAll(p)
	wg.Wait()
	if string(got) != "some bytes" || !errors.Is(err, errEnd) {
		t.Fatalf("read %q, %v; want %q, then %v", got, err, "some bytes", errEnd)
	}
	if err := p.Discard(); !errors.Is(err, errEnd) {
		t.Errorf("Discard() after the end = %v, want %v", err, errEnd)
	}
}

// TestStop checks that Stop frees a writer and a Source that wait for a
// reader who reads no more, and that Write then drops what it is given.
func TestStop(t *testing.T) {
	t.Run("write", func(t *testing.T) {
		p := chunks.New(1, 4)
		done := make(chan bool)
		// Three chunks into a pipe of one buffer, never read: the writer
		// waits until Stop.
		go func() { done <- p.Write([]byte("123456789012")) }()
		p.Stop()
		if <-done {
			t.Error("Write into a stopped pipe reported true")
		}
		if p.Write([]byte("x")) {
			t.Error("Write after Stop reported true")
		}
		p.CloseWrite() // does not block
		p.Stop()       // twice is fine
	})
	t.Run("source", func(t *testing.T) {
		p := chunks.New(2, 4)
		p.Source(func(buf []byte) (int, error) { return len(buf), nil }) // endless
		p.Then(func([]byte) {})
		if _, err := p.Read(make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		p.Stop()
		p.Wait() // returns: both goroutines saw the stop
		p.Recycle()
	})
	t.Run("reader", func(t *testing.T) {
		// A reader waiting for a chunk that never comes is let go by a
		// Stop from another goroutine.
		p := chunks.New(1, 4)
		read := make(chan error)
		go func() {
			_, err := p.Read(make([]byte, 4))
			read <- err
		}()
		p.Stop()
		select {
		case err := <-read:
			if !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("Read after Stop = %v, want io.ErrClosedPipe", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Read still waits 10 s after Stop")
		}
		if _, err := p.Read(make([]byte, 4)); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("second Read after Stop = %v, want io.ErrClosedPipe", err)
		}
	})
}

// TestDiscard checks that Discard reads to the end, after a partial Read.
func TestDiscard(t *testing.T) {
	src := bytes.NewReader(randomBytes(10_000))
	p := chunks.New(2, 1000)
	p.Source(readFull(src))
	if _, err := p.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := p.Discard(); err != nil {
		t.Fatalf("Discard = %v, want nil at the end", err)
	}
	if src.Len() != 0 {
		t.Errorf("%d bytes of the source left unread", src.Len())
	}
	p.Wait()
}
