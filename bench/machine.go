package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/pullkit/pullkit/internal/inflate"
)

// machine holds the machine's own limits, measured in the same run as the
// contenders, in MB/s (10^6 bytes per second).
type machine struct {
	SHA256       float64
	GzipIn       float64 // compressed bytes read per second
	GzipOut      float64 // uncompressed bytes produced per second
	InflateIn    float64 // the same, with pullkit's internal/inflate
	InflateOut   float64
	ZstdIn       float64
	ZstdOut      float64
	HTTP         float64 // one loopback HTTP stream, Go client and server
	DiskFsync    float64 // write 512 MiB, then fsync
	DiskFsync4   float64 // write 4 files of 128 MiB at once, then fsync each
	IdleRSSMiB   float64 // the bench binary's worker doing nothing
	CreateFiles  float64 // small files created per second (not MB/s)
	CPUs         int
	GoVersion    string
	Kernel       string
	CPUModel     string
	MemTotalGiB  float64
	RatioSampled float64 // the sample's gzip ratio
}

// pullLimit is what a pull to a store can reach at best: each byte is
// received over HTTP, hashed and written.
func (m machine) pullLimit() float64 { return min(m.HTTP, m.SHA256, m.DiskFsync) }

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// best runs f n times and returns the shortest time.
func best(n int, f func() error) (time.Duration, error) {
	var b time.Duration
	for i := range n {
		s := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		if d := time.Since(s); i == 0 || d < b {
			b = d
		}
	}
	return b, nil
}

// writeSynced writes n bytes to a new file at path, buf at a time, fsyncs
// it and removes it.
func writeSynced(path string, n int, buf []byte) error {
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for range n / len(buf) {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func measureMachine(g *generator, dir string) (machine, error) {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.Kernel, m.CPUModel, m.MemTotalGiB = sysInfo()

	// sha256 over 256 MiB.
	buf := make([]byte, 4<<20)
	_, _ = g.rng("machine/sha").Read(buf)
	const shaTotal = 256 << 20
	d, _ := best(3, func() error {
		h := sha256.New()
		for range shaTotal / len(buf) {
			h.Write(buf)
		}
		h.Sum(nil)
		return nil
	})
	m.SHA256 = mbps(shaTotal, d)

	// gzip and zstd decode of 64 MiB of the workloads' half-compressible data.
	var raw bytes.Buffer
	if err := g.filler("machine/codec").write(&raw, 64<<20); err != nil {
		return m, err
	}
	var gz, zs bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	_, _ = zw.Write(raw.Bytes())
	_ = zw.Close()
	m.RatioSampled = float64(gz.Len()) / float64(raw.Len())
	ze, _ := zstd.NewWriter(&zs)
	_, _ = ze.Write(raw.Bytes())
	_ = ze.Close()
	// decode times the best of 3 decodings of z with a decoder that open
	// returns, and the function that releases it.
	out := make([]byte, 1<<20)
	decode := func(z []byte, open func(io.Reader) (io.Reader, func(), error)) (in, o float64, err error) {
		d, err := best(3, func() error {
			zr, release, err := open(bytes.NewReader(z))
			if err != nil {
				return err
			}
			defer release()
			_, err = io.CopyBuffer(io.Discard, zr, out)
			return err
		})
		return mbps(int64(len(z)), d), mbps(int64(raw.Len()), d), err
	}
	var err error
	if m.GzipIn, m.GzipOut, err = decode(gz.Bytes(), func(r io.Reader) (io.Reader, func(), error) {
		zr, err := gzip.NewReader(r)
		return zr, func() {}, err
	}); err != nil {
		return m, err
	}
	if m.InflateIn, m.InflateOut, err = decode(gz.Bytes(), func(r io.Reader) (io.Reader, func(), error) {
		zr, err := inflate.NewReader(r)
		return zr, func() {}, err
	}); err != nil {
		return m, err
	}
	if m.ZstdIn, m.ZstdOut, err = decode(zs.Bytes(), func(r io.Reader) (io.Reader, func(), error) {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}); err != nil {
		return m, err
	}

	// One loopback HTTP stream of 512 MiB.
	const httpTotal = 512 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return m, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(httpTotal))
		for range httpTotal / len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	d, err = best(3, func() error {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.CopyBuffer(io.Discard, resp.Body, out)
		if err == nil && n != httpTotal {
			err = fmt.Errorf("loopback HTTP: got %d bytes", n)
		}
		return err
	})
	if err != nil {
		return m, err
	}
	m.HTTP = mbps(httpTotal, d)

	// Write 512 MiB to a file, then fsync; then the same bytes as 4 files
	// written at once, as a pull of 4 blobs writes them, each synced at
	// its end.
	const diskTotal = 512 << 20
	file := filepath.Join(dir, "disk-probe")
	d, err = best(2, func() error { return writeSynced(file, diskTotal, buf) })
	if err != nil {
		return m, err
	}
	m.DiskFsync = mbps(diskTotal, d)
	syncAndSettle()
	d, err = best(2, func() error {
		var g errgroup.Group
		for i := range 4 {
			g.Go(func() error { return writeSynced(fmt.Sprintf("%s-%d", file, i), diskTotal/4, buf) })
		}
		return g.Wait()
	})
	if err != nil {
		return m, err
	}
	m.DiskFsync4 = mbps(diskTotal, d)
	syncAndSettle()

	// Create 5,000 files of 2 KiB in 50 directories. The probe is left in
	// place until the work directory goes: deleting it now would slow the
	// creation of files for a minute (see settleAfterDelete).
	probe := filepath.Join(dir, "create-probe")
	s := time.Now()
	for i := range 5000 {
		sub := filepath.Join(probe, fmt.Sprintf("d%02d", i%50))
		if i < 50 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return m, err
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), buf[:2048], 0o644); err != nil {
			return m, err
		}
	}
	m.CreateFiles = 5000 / time.Since(s).Seconds()
	syncAndSettle()
	return m, nil
}

func sysInfo() (kernel, cpu string, memGiB float64) {
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = string(bytes.TrimSpace(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				cpu = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			memGiB = kb / (1 << 20)
		}
	}
	return
}
