package unpack

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// gzipCommandName is the external gzip decompressor Apply uses when it is
// on PATH: igzip, from Intel's ISA-L (the Debian package isal), decodes
// about twice as fast as Go's fastest decoder (github.com/klauspost/compress),
// and in a process of its own. unpigz is not used: it decodes no faster
// than that decoder.
const gzipCommandName = "igzip"

// gzipCommand returns the path of gzipCommandName found on PATH, looked up
// once per process, or "". Tests replace it.
var gzipCommand = sync.OnceValue(func() string {
	p, err := exec.LookPath(gzipCommandName)
	if err != nil {
		return ""
	}
	return p
})

// cmdReader reads what an external decompressor writes: the compressed
// stream is fed to its standard input from a goroutine, and its standard
// output is read through a pipe.
type cmdReader struct {
	cmd    *exec.Cmd
	name   string
	out    *os.File
	src    *compressedCounter
	stderr *cappedBuffer
	fed    chan struct{} // closed when the feeding goroutine has returned

	killOnce sync.Once
	waited   bool
	waitErr  error
}

// startDecompressCmd starts path -d -c, fed from r, which reads through src.
func startDecompressCmd(path string, r io.Reader, src *compressedCounter) (*cmdReader, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c := &cmdReader{
		cmd:    exec.Command(path, "-d", "-c"),
		name:   filepath.Base(path),
		out:    outR,
		src:    src,
		stderr: &cappedBuffer{max: 4 << 10},
		fed:    make(chan struct{}),
	}
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = inR, outW, c.stderr
	err = c.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	setPipeSize(outR, 1<<20) // fewer, larger reads; best effort
	go c.feed(r, inW)
	return c, nil
}

// feed copies the compressed stream to the command until either ends.
func (c *cmdReader) feed(r io.Reader, w *os.File) {
	defer close(c.fed)
	defer w.Close()
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the command stopped reading: it exited
			}
		}
		if err != nil {
			return
		}
	}
}

// Read reads the decompressed stream; at its end, it reports how the
// command exited.
func (c *cmdReader) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err != nil {
		if werr := c.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// wait waits for the command and the feeding goroutine. An error of the
// caller's reader comes first: the command then failed for want of input.
func (c *cmdReader) wait() error {
	if c.waited {
		return c.waitErr
	}
	c.waited = true
	err := c.cmd.Wait()
	<-c.fed
	switch {
	case c.src.err != nil:
		c.waitErr = c.src.err
	case err != nil:
		msg := strings.TrimSpace(c.stderr.String())
		if msg == "" {
			c.waitErr = fmt.Errorf("%s: %w", c.name, err)
		} else {
			c.waitErr = fmt.Errorf("%s: %w: %s", c.name, err, msg)
		}
	}
	return c.waitErr
}

// kill stops the command, so that reads of its output end.
func (c *cmdReader) kill() {
	c.killOnce.Do(func() { c.cmd.Process.Kill() })
}

// close stops the command if it still runs and releases it; the caller's
// reader is no longer read once it returns.
func (c *cmdReader) close() {
	c.kill()
	c.wait()
	c.out.Close()
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
