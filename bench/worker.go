package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// result is what a worker reports on its standard output, as one JSON line.
type result struct {
	Seconds   float64 `json:"seconds"`
	MaxRSSKiB int64   `json:"maxrss_kib"`
	// CPU is the user and system time of the worker (and of its children,
	// GNU tar's gzip included), set by the parent.
	CPU float64 `json:"cpu,omitempty"`
	// ServerCPU is the user and system time the bench's own process (the
	// registry, and the proxy of -cap) spent while the worker ran, set by
	// the parent.
	ServerCPU float64 `json:"server_cpu,omitempty"`
	// Busy is the CPU time the whole machine spent not idle during the op
	// (every process, and the kernel's threads: writeback, softirq), from
	// /proc/stat, in its ticks of 10 ms.
	Busy float64 `json:"busy,omitempty"`
	// What the root filesystem holds after an unpack, to check that the
	// contenders produced the same tree.
	Files   int64  `json:"files,omitempty"`
	Dirs    int64  `json:"dirs,omitempty"`
	Links   int64  `json:"links,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	Err     string `json:"err,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
}

// childRusage is set by an op that runs another program (GNU tar), whose
// peak RSS is then reported instead of the worker's.
var childRusage any

// workerMain runs one contender's op once, in this process, and reports the
// time it took and the process's peak RSS.
func workerMain(args []string) int {
	fl := flag.NewFlagSet("worker", flag.ExitOnError)
	var j job
	var cpuprofile string
	fl.StringVar(&j.Contender, "contender", "", "pullkit, containerd, ggcr, ref-get, gnu-tar or ref-sha256")
	fl.StringVar(&j.Op, "op", "", "pull, unpack or import")
	fl.StringVar(&j.Ref, "ref", "", "image reference")
	fl.StringVar(&j.Host, "host", "", "registry host:port, plain HTTP")
	fl.StringVar(&j.Dir, "dir", "", "fresh directory to work in")
	fl.StringVar(&j.Archive, "archive", "", "archive or layer file")
	fl.StringVar(&j.Blobs, "blobs", "", "ref-get: digests to fetch")
	fl.StringVar(&j.Repo, "repo", "", "ref-get: repository")
	fl.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the op to this file")
	_ = fl.Parse(args)
	// containerd logs through logrus' standard logger (an fsverity probe
	// warns on every store); the figures are what matters here.
	logrus.SetOutput(io.Discard)

	emit := func(r result) int {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		if r.Err != "" {
			return 1
		}
		return 0
	}
	fn := ops[j.Contender][j.Op]
	if fn == nil {
		return emit(result{Skipped: true})
	}
	if err := os.MkdirAll(j.Dir, 0o755); err != nil {
		return emit(result{Err: err.Error()})
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return emit(result{Err: err.Error()})
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return emit(result{Err: err.Error()})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	busy0 := machineBusy()
	start := time.Now()
	err := fn(ctx, j)
	elapsed := time.Since(start)
	busy := machineBusy() - busy0
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	r := result{Seconds: elapsed.Seconds(), MaxRSSKiB: vmHWM(), Busy: busy}
	if ru, ok := childRusage.(*syscall.Rusage); ok {
		r.MaxRSSKiB = ru.Maxrss
	}
	if err != nil {
		r.Err = err.Error()
		return emit(r)
	}
	if j.Op == "unpack" {
		if err := countTree(j.rootfs(), &r); err != nil {
			r.Err = "count the unpacked tree: " + err.Error()
		}
	}
	return emit(r)
}

// machineBusy returns the CPU time, in seconds, that the machine's CPUs
// have spent not idle since boot: user, nice, system, irq, softirq and
// steal (time the hypervisor gave to others is not ours either), from the
// first line of /proc/stat. It returns 0 where there is no /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks float64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return ticks / 100 // USER_HZ is 100 on Linux
}

// vmHWM returns the process's peak resident set size in KiB, from
// /proc/self/status.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return v
		}
	}
	return 0
}

// countTree counts what an unpack left in root.
func countTree(root string, r *result) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		switch {
		case d.IsDir():
			r.Dirs++
		case d.Type()&fs.ModeSymlink != 0:
			r.Links++
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r.Files++
			r.Bytes += fi.Size()
		}
		return nil
	})
}

func (r result) String() string {
	return fmt.Sprintf("%.3fs %dKiB", r.Seconds, r.MaxRSSKiB)
}
