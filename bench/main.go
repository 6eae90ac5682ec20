// Command bench pulls, unpacks and imports the same images with pullkit and
// with its peers used as libraries (containerd's v2 client packages and
// go-containerregistry), side by side in one run, against the CNCF
// distribution registry served in this process, and prints a markdown
// table of times, throughputs, peak memory and pullkit/peer ratios.
//
// Run it with `go run .` in this directory; see README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(workerMain(os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	scale      float64
	workloads  []string
	ops        []string
	contenders []string
	runs       int
	capRate    float64
	capText    string
	seed       uint64
	workdir    string
	keep       bool
	machine    bool
	profileDir string
	out        string
	command    string
}

// allWorkloads in the order they run: tree last, because deleting its
// trees slows the creation of files for a minute afterwards (see
// settleAfterDelete).
var allWorkloads = []string{"big", "many", "multi", "save", "tree"}

func parseFlags() (options, error) {
	var o options
	var workloads, ops, contenders string
	flag.Float64Var(&o.scale, "scale", 1, "multiply every workload's size by this (0.05 for a quick run)")
	flag.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "workloads to run: big, tree, many, multi, save (the docker save archive of big, for import)")
	flag.StringVar(&ops, "ops", "pull,unpack,import", "operations to run: pull (to a store), unpack (pull and unpack), import")
	flag.StringVar(&contenders, "contenders", "pullkit,pullkit-nosync,containerd,ggcr,ref", "contenders: pullkit, pullkit-nosync (a store without fsync, pull and import only), pullkit-noahead (unpack without decompressing layers ahead), containerd, containerd-chunked (its opt-in parallel ranges), ggcr, and ref for the reference figures (plain GET, GNU tar, read+sha256)")
	flag.IntVar(&o.runs, "runs", 3, "runs of each contender, interleaved; the median is reported")
	flag.StringVar(&o.capText, "cap", "", "limit each TCP connection to the registry to this rate (25MB = 25 MB/s), through a proxy")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the workloads' content")
	flag.StringVar(&o.workdir, "workdir", "", "directory for the registry, the workloads and the runs (default: a new one under $TMPDIR)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&o.machine, "machine", true, "measure the machine's limits (sha256, gzip, zstd, loopback HTTP, disk)")
	flag.StringVar(&o.profileDir, "cpuprofile", "", "write a CPU profile of the first run of each case by pullkit (and its variants) to this directory")
	flag.StringVar(&o.out, "o", "", "also write the report to this file (default RESULTS.md for a full run: scale 1, every workload, no cap)")
	flag.Parse()
	if o.runs < 1 {
		return o, errors.New("-runs must be at least 1")
	}
	if o.scale <= 0 {
		return o, errors.New("-scale must be positive")
	}
	o.workloads = splitList(workloads)
	for _, w := range o.workloads {
		if !slices.Contains(allWorkloads, w) {
			return o, fmt.Errorf("unknown workload %q (want %s)", w, strings.Join(allWorkloads, ", "))
		}
	}
	o.ops = splitList(ops)
	o.contenders = splitList(contenders)
	if o.capText != "" {
		r, err := parseRate(o.capText)
		if err != nil {
			return o, err
		}
		o.capRate = r
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["o"] && o.scale == 1 && !set["workloads"] && !set["ops"] && !set["contenders"] && o.capRate == 0 {
		o.out = "RESULTS.md"
	}
	o.command = "go run . " + strings.Join(os.Args[1:], " ")
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// benchCase is one workload and operation, run by several contenders.
type benchCase struct {
	workload   string
	op         string
	contenders []string
	bytes      int64 // bytes a run moves, for MB/s: compressed image, or archive size
	job        job   // the template: Contender and Dir are set per run
	results    map[string][]result
}

func run() error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	// An interrupt stops the worker under way (exec.CommandContext) and
	// lets the deferred clean-up remove the work directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	loadStart := loadAvg()
	if o.workdir == "" {
		// /var/tmp rather than /tmp: it is meant for large files, and
		// /tmp sees the churn of every go build and test on the machine.
		base := ""
		if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() && os.Getenv("TMPDIR") == "" {
			base = "/var/tmp"
		}
		o.workdir, err = os.MkdirTemp(base, "pullkit-bench-")
		if err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.workdir, 0o755); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(o.workdir)
	}
	if o.profileDir != "" {
		if o.profileDir, err = filepath.Abs(o.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	logf("work directory %s, scale %g, %d runs", o.workdir, o.scale, o.runs)

	g, err := newGenerator(o.seed, o.scale, filepath.Join(o.workdir, "blobs"))
	if err != nil {
		return err
	}
	var m *machine
	if o.machine {
		logf("measuring the machine's limits")
		mm, err := measureMachine(g, o.workdir)
		if err != nil {
			return fmt.Errorf("measure the machine: %w", err)
		}
		if mm.IdleRSSMiB, err = idleRSS(o.workdir); err != nil {
			return err
		}
		m = &mm
	}

	// Generate the workloads, and push them to a registry.
	images := map[string]*image{}
	want := func(w string) bool { return slices.Contains(o.workloads, w) }
	gens := []struct {
		name string
		fn   func(context.Context) (*image, error)
	}{{"big", g.big}, {"tree", g.tree}, {"many", g.many}, {"multi", g.multi}}
	for _, gen := range gens {
		if !want(gen.name) && !(gen.name == "big" && want("save")) {
			continue
		}
		t := time.Now()
		im, err := gen.fn(ctx)
		if err != nil {
			return fmt.Errorf("generate %s: %w", gen.name, err)
		}
		images[gen.name] = im
		logf("generated %s: %d layers, %.1f MB compressed, in %s", gen.name, len(im.Layers), float64(im.PullBytes)/1e6, time.Since(t).Round(time.Millisecond))
	}
	var save saveArchive
	if want("save") && slices.Contains(o.ops, "import") && o.capRate == 0 {
		t := time.Now()
		if save, err = g.dockerSave(images["big"], filepath.Join(o.workdir, "big-docker-save.tar")); err != nil {
			return fmt.Errorf("write the docker save archive: %w", err)
		}
		logf("wrote the docker save archive of big: %.1f MB, in %s", float64(save.Size)/1e6, time.Since(t).Round(time.Millisecond))
	}

	reg, err := startRegistry(filepath.Join(o.workdir, "registry"))
	if err != nil {
		return err
	}
	defer reg.Close()
	p := &pusher{base: "http://" + reg.Host, client: &http.Client{}}
	for _, name := range []string{"big", "tree", "many", "multi"} {
		im := images[name]
		if im == nil || !want(name) {
			continue
		}
		t := time.Now()
		if err := p.push(ctx, im); err != nil {
			return fmt.Errorf("push %s: %w", name, err)
		}
		logf("pushed %s in %s", name, time.Since(t).Round(time.Millisecond))
	}
	// The blob files are no longer needed but for GNU tar's layer and the
	// archive; the page cache keeps what the registry serves.
	syncAndSettle()

	host := reg.Host
	if o.capRate > 0 {
		proxy, err := startCappedProxy(reg.Host, o.capRate)
		if err != nil {
			return err
		}
		defer proxy.Close()
		host = proxy.Host
		logf("each connection capped at %.1f MB/s through %s", o.capRate/1e6, host)
	}

	cases := planCases(o, images, save, host)
	runsDir := filepath.Join(o.workdir, "runs")
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for ci, c := range cases {
		logf("%s %s: %s", c.workload, c.op, strings.Join(c.contenders, ", "))
		var deferred []string
		// run runs con once into dir, then deletes the tree outside the
		// timed region, or keeps a tree of many files until the case is
		// over (see settleAfterDelete), and syncs, a kept tree too: its
		// write-back would otherwise fall in the next timed run.
		run := func(con, dir, profile string) (result, error) {
			j := c.job
			j.Contender, j.Dir = con, dir
			r, err := runWorker(ctx, exe, j, profile)
			if err == nil && r.Files+r.Dirs+r.Links > manyEntries {
				deferred = append(deferred, dir)
			} else if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
				err = rerr
			}
			syncAndSettle()
			return r, err
		}
		// A run that is not counted first: on this VM the first run of a
		// case, after the sync and the wait before it, is slower than the
		// rest, whoever makes it.
		warm, err := run(c.contenders[0], filepath.Join(runsDir, fmt.Sprintf("%s-%s-warmup", c.workload, c.op)), "")
		if err != nil {
			return fmt.Errorf("%s %s %s warm-up: %w", c.workload, c.op, c.contenders[0], err)
		}
		logf("  %-18s warm-up: %6.2fs (not counted)", c.contenders[0], warm.Seconds)
		for i := range o.runs {
			// Each round starts with the next contender, so that no one
			// of them always runs first, after the previous case.
			for k := range c.contenders {
				con := c.contenders[(i+k)%len(c.contenders)]
				profile := ""
				if o.profileDir != "" && strings.HasPrefix(con, "pullkit") && i == 0 {
					name := c.workload + "-" + c.op
					if v, ok := strings.CutPrefix(con, "pullkit-"); ok {
						name += "-" + v // big-pull-nosync
					}
					profile = filepath.Join(o.profileDir, name+".pprof")
				}
				r, err := run(con, filepath.Join(runsDir, fmt.Sprintf("%s-%s-%s-%d", c.workload, c.op, con, i)), profile)
				if err != nil {
					return fmt.Errorf("%s %s %s run %d: %w", c.workload, c.op, con, i+1, err)
				}
				c.results[con] = append(c.results[con], r)
				logf("  %-18s run %d: %6.2fs %7.1f MB/s  %6.1f MiB  cpu %5.2fs", con, i+1, r.Seconds, mbps(c.bytes, secs(r.Seconds)), float64(r.MaxRSSKiB)/1024, r.CPU)
			}
		}
		if len(deferred) > 0 {
			for _, d := range deferred {
				if err := os.RemoveAll(d); err != nil {
					return err
				}
			}
			syncAndSettle()
			if ci < len(cases)-1 {
				settleAfterDelete(ctx)
			}
		}
	}

	rep := report{opts: o, machine: m, cases: cases, images: images, save: save, started: started, elapsed: time.Since(started),
		loadStart: loadStart, loadEnd: loadAvg()}
	text := rep.markdown()
	fmt.Println(text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	return nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// planCases lists the cases to run, in the order of the workloads.
func planCases(o options, images map[string]*image, save saveArchive, host string) []*benchCase {
	has := func(c string) bool { return slices.Contains(o.contenders, c) }
	peers := func(op string, refs ...string) []string {
		var out []string
		for _, c := range []string{"pullkit", "pullkit-nosync", "pullkit-noahead", "containerd", "containerd-chunked", "ggcr"} {
			if has(c) && ops[c][op] != nil {
				out = append(out, c)
			}
		}
		if has("ref") {
			out = append(out, refs...)
		}
		return out
	}
	var cases []*benchCase
	for _, w := range o.workloads {
		if w == "save" {
			if slices.Contains(o.ops, "import") && o.capRate == 0 {
				cases = append(cases, &benchCase{
					workload: "save", op: "import", contenders: peers("import", "ref-sha256"), bytes: save.Size,
					job: job{Op: "import", Archive: save.Path},
				})
			}
			continue
		}
		im := images[w]
		ref := fmt.Sprintf("%s/%s:%s", host, im.Repo, im.Tag)
		base := job{Ref: ref, Host: host, Repo: im.Repo, Blobs: strings.Join(im.Fetch, ",")}
		if slices.Contains(o.ops, "pull") {
			j := base
			j.Op = "pull"
			cases = append(cases, &benchCase{workload: w, op: "pull", contenders: peers("pull", "ref-get"), bytes: im.PullBytes, job: j})
		}
		if slices.Contains(o.ops, "unpack") {
			j := base
			j.Op = "unpack"
			var refs []string
			if w == "tree" {
				refs = []string{"gnu-tar"}
				j.Archive = im.Layers[0].Path
			}
			cases = append(cases, &benchCase{workload: w, op: "unpack", contenders: peers("unpack", refs...), bytes: im.PullBytes, job: j})
		}
	}
	for _, c := range cases {
		c.results = map[string][]result{}
	}
	return cases
}

// runWorker runs one op in a new process of this program and returns what
// it reported.
func runWorker(ctx context.Context, exe string, j job, profile string) (result, error) {
	args := []string{"worker", "-contender", j.Contender, "-op", j.Op, "-ref", j.Ref, "-host", j.Host,
		"-dir", j.Dir, "-archive", j.Archive, "-blobs", j.Blobs, "-repo", j.Repo}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	if wrap := strings.Fields(os.Getenv("BENCH_WORKER_WRAP")); len(wrap) > 0 && j.Contender != "idle" {
		// For investigation: run workers under strace, perf, ...
		cmd = exec.CommandContext(ctx, wrap[0], append(append(wrap[1:], exe), args...)...)
	}
	cmd.Stderr = os.Stderr
	var self0, self1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	out, err := cmd.Output()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	var r result
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		if err == nil {
			err = jerr
		}
		return r, fmt.Errorf("worker: %w: %s", err, out)
	}
	if r.Err != "" {
		return r, errors.New(r.Err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && r.MaxRSSKiB == 0 {
		r.MaxRSSKiB = ru.Maxrss
	}
	// The worker's CPU time, its children's included (RUSAGE_CHILDREN of
	// the worker are folded into its own rusage at exit).
	r.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	r.ServerCPU = rusageSeconds(&self1) - rusageSeconds(&self0)
	return r, nil
}

// rusageSeconds returns the user and system time in ru, in seconds.
func rusageSeconds(ru *syscall.Rusage) float64 {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// idleRSS is the peak RSS of a worker that does nothing: the floor every
// contender's figure includes (the runtime, and the init of every package
// linked into this binary).
func idleRSS(dir string) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	r, err := runWorker(context.Background(), exe, job{Contender: "idle", Op: "pull", Dir: filepath.Join(dir, "idle")}, "")
	if err != nil {
		return 0, err
	}
	return float64(r.MaxRSSKiB) / 1024, nil
}

// manyEntries is the size of a tree whose deletion is deferred.
const manyEntries = 1000

// settleAfterDelete waits out the minute after a large delete during which
// ext4 without a journal (as here) will not reuse the freed inodes: it
// skips each of them on every file it creates (recently_deleted in
// fs/ext4/ialloc.c, 60 s once the inode table is written back, 360 s while
// it is dirty), which made creating 3,000 files take 2 s instead of 0.1 s.
func settleAfterDelete(ctx context.Context) {
	logf("waiting 65 s for the inodes just freed to become reusable")
	select {
	case <-ctx.Done():
	case <-time.After(65 * time.Second):
	}
}

// syncAndSettle flushes dirty pages to disk, so that the write-back of one
// run is not charged to the next.
func syncAndSettle() {
	syscall.Sync()
	time.Sleep(200 * time.Millisecond)
}

// loadAvg returns the 1, 5 and 15 minute load averages: the machine is
// shared, and a loaded one slows every contender.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
