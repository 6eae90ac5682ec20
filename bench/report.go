package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report renders a run as markdown.
type report struct {
	opts    options
	machine *machine
	cases   []*benchCase
	images  map[string]*image
	save    saveArchive
	started time.Time
	elapsed time.Duration
	// load averages when the run started and ended
	loadStart, loadEnd string
}

func median(rs []result) float64 { return medianOf(rs, func(r result) float64 { return r.Seconds }) }

func medianCPU(rs []result) float64 { return medianOf(rs, func(r result) float64 { return r.CPU }) }

// medianOf returns the median of one figure of the runs, 0 for none.
func medianOf(rs []result, figure func(result) float64) float64 {
	s := make([]float64, len(rs))
	for i, r := range rs {
		s[i] = figure(r)
	}
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianBusy returns the median share of the machine's CPUs that were busy
// during a run, in percent.
func medianBusy(rs []result, cpus int) float64 {
	return medianOf(rs, func(r result) float64 { return 100 * r.Busy / r.Seconds / float64(max(cpus, 1)) })
}

func peakRSS(rs []result) float64 {
	var m int64
	for _, r := range rs {
		m = max(m, r.MaxRSSKiB)
	}
	return float64(m) / 1024
}

// peerNames are the library peers in their default configuration, which
// the targets compare with.
var peerNames = []string{"containerd", "ggcr"}

func (c *benchCase) med(con string) (float64, bool) {
	rs, ok := c.results[con]
	if !ok || len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

// fastestPeer returns the library peer with the shortest median.
func (c *benchCase) fastestPeer() (string, float64) {
	best, bt := "", 0.0
	for _, p := range peerNames {
		if t, ok := c.med(p); ok && (best == "" || t < bt) {
			best, bt = p, t
		}
	}
	return best, bt
}

func (rep report) markdown() string {
	var b strings.Builder
	o := rep.opts
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	title := "pullkit benchmark"
	if o.capRate > 0 {
		title += fmt.Sprintf(", each connection capped at %.0f MB/s", o.capRate/1e6)
	}
	w("# %s\n\n", title)
	w("- date: %s (took %s)\n", rep.started.UTC().Format("2006-01-02 15:04 MST"), rep.elapsed.Round(time.Second))
	w("- command: `cd bench && %s`\n", strings.TrimSpace(o.command))
	w("- load average (1, 5, 15 min) at the start: %s; at the end: %s\n", rep.loadStart, rep.loadEnd)
	w("- scale %g, %d interleaved runs per contender, the median reported; peak RSS is the largest of the runs\n", o.scale, o.runs)
	if m := rep.machine; m != nil {
		w("\n## Machine\n\n")
		w("%d CPUs (%s), %.0f GiB RAM, Linux %s, %s\n\n", m.CPUs, m.CPUModel, m.MemTotalGiB, m.Kernel, m.GoVersion)
		w("| limit | MB/s |\n|---|---:|\n")
		w("| sha256 | %.0f |\n", m.SHA256)
		w("| gzip decode (klauspost), compressed in / uncompressed out | %.0f / %.0f |\n", m.GzipIn, m.GzipOut)
		w("| gzip decode (pullkit's `internal/inflate`), compressed in / uncompressed out | %.0f / %.0f |\n", m.InflateIn, m.InflateOut)
		w("| zstd decode (klauspost), compressed in / uncompressed out | %.0f / %.0f |\n", m.ZstdIn, m.ZstdOut)
		w("| loopback HTTP, one stream (Go client and server) | %.0f |\n", m.HTTP)
		w("| disk: write 512 MiB, then fsync | %.0f |\n", m.DiskFsync)
		w("| disk: write 4 files of 128 MiB at once, then fsync each (not in the limit) | %.0f |\n", m.DiskFsync4)
		w("| **pull limit**: min(HTTP, sha256, disk) | **%.0f** |\n", m.pullLimit())
		w("| create files of 2 KiB (files per second, not MB/s) | %.0f |\n\n", m.CreateFiles)
		w("The workloads' data compresses to %.0f%% with gzip -6. A worker that does nothing peaks at %.1f MiB RSS: every contender's figure includes that floor (the Go runtime and the init of everything linked into the bench binary).\n", 100*m.RatioSampled, m.IdleRSSMiB)
	}

	w("\n## Workloads\n\n| workload | what | compressed MB pulled | uncompressed MB |\n|---|---|---:|---:|\n")
	for _, name := range []string{"big", "tree", "many", "multi"} {
		im := rep.images[name]
		if im == nil || !slices.Contains(o.workloads, name) {
			continue
		}
		var u int64
		for _, l := range im.Layers {
			u += l.USize
		}
		w("| %s | %s | %.1f | %.1f |\n", name, describeWorkload(name, im, o.scale), float64(im.PullBytes)/1e6, float64(u)/1e6)
	}
	if rep.save.Size > 0 {
		w("| save | `docker save` archive of big (Docker 25 layout: OCI layout with uncompressed layers, manifest.json, repositories) | %.1f (archive) | |\n", float64(rep.save.Size)/1e6)
	}

	w("\n## Results\n\n")
	w("Times are wall-clock seconds of the operation in its own process; MB/s is compressed bytes pulled (the archive's bytes for import) per second. ")
	w("**pullkit ÷ this** is pullkit's median over this contender's: below 1 pullkit is faster.\n\n")
	w("**CPU s** is the median user+system time of the worker process (GNU tar's gzip included); it includes the worker's start (about 0.05 s), unlike the wall time.\n\n")
	w("**server CPU s** is the median CPU time of the bench's own process while the worker ran: the registry (and the proxy, when capped). ")
	w("**busy %%** is the median share of the machine's %d CPUs that were not idle during the operation, whoever used them (the worker, the registry, the kernel's writeback), from /proc/stat in ticks of 10 ms: near 100, the CPUs bound the operation.\n\n", runtime.NumCPU())
	w("| workload | op | contender | median s | MB/s | CPU s | server CPU s | busy %% | peak RSS MiB | pullkit ÷ this | runs (s) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range rep.cases {
		pk, hasPK := c.med("pullkit")
		for _, con := range c.contenders {
			rs := c.results[con]
			if len(rs) == 0 {
				continue
			}
			t := median(rs)
			ratio := ""
			if hasPK && con != "pullkit" {
				ratio = fmt.Sprintf("%.2f", pk/t)
			}
			var runs []string
			for _, r := range rs {
				runs = append(runs, fmt.Sprintf("%.2f", r.Seconds))
			}
			name := con
			if con == "pullkit" {
				name = "**pullkit**"
			}
			w("| %s | %s | %s | %.2f | %.0f | %.2f | %.2f | %.0f | %.1f | %s | %s |\n", c.workload, opName(c.op), name, t, float64(c.bytes)/t/1e6, medianCPU(rs),
				medianOf(rs, func(r result) float64 { return r.ServerCPU }), medianBusy(rs, runtime.NumCPU()), peakRSS(rs), ratio, strings.Join(runs, " "))
		}
	}
	rep.targets(&b)
	rep.checks(&b)
	return b.String()
}

func opName(op string) string {
	switch op {
	case "pull":
		return "pull to store"
	case "unpack":
		return "pull+unpack"
	}
	return op
}

func describeWorkload(name string, im *image, scale float64) string {
	switch name {
	case "big":
		return fmt.Sprintf("%d layers of about %.0f MB of gzip, 8 MiB files, half random, half text", len(im.Layers), float64(bigLayerSize)*scale/1e6)
	case "tree":
		return fmt.Sprintf("a layer of %d files (small, nested dirs, symlinks, hardlinks) and a layer of whiteouts", int(max(float64(treeFiles)*scale, 200)))
	case "many":
		return fmt.Sprintf("%d layers of about %.1f MB of gzip", len(im.Layers), float64(manyLayerSize)*scale/1e6)
	case "multi":
		return fmt.Sprintf("an OCI index of 3 platforms; linux/amd64 pulled: %d layers of about %.1f MB", len(im.Layers), float64(multiLayerSize)*scale/1e6)
	}
	return ""
}

// targets compares pullkit with the goals the project set itself.
func (rep report) targets(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	find := func(wl, op string) *benchCase {
		for _, c := range rep.cases {
			if c.workload == wl && c.op == op {
				return c
			}
		}
		return nil
	}
	type row struct {
		what, measured, goal string
		ok                   bool
	}
	var rows []row
	ratio := func(wl, op, peer string, goal float64, label string) {
		c := find(wl, op)
		if c == nil {
			return
		}
		pk, ok1 := c.med("pullkit")
		if !ok1 {
			return
		}
		name, t := peer, 0.0
		ok2 := false
		if peer == "" {
			name, t = c.fastestPeer()
			ok2 = name != ""
		} else {
			t, ok2 = c.med(peer)
		}
		if !ok2 {
			return
		}
		r := pk / t
		rows = append(rows, row{label, fmt.Sprintf("%.2f× %s", r, name), fmt.Sprintf("≤ %.2f×", goal), r <= goal})
	}
	capped := rep.opts.capRate > 0
	if !capped {
		ratio("big", "pull", "", 0.6, "big: pull to store vs the fastest peer")
		ratio("many", "pull", "", 0.8, "many: pull to store vs the fastest peer")
		if c := find("big", "pull"); c != nil && rep.machine != nil {
			if pk, ok := c.med("pullkit"); ok {
				got := float64(c.bytes) / pk / 1e6
				lim := rep.machine.pullLimit()
				rows = append(rows, row{"big: pull to store vs the machine's pull limit", fmt.Sprintf("%.0f%% (%.0f of %.0f MB/s)", 100*got/lim, got, lim), "≥ 75%", got >= 0.75*lim})
			}
		}
		ratio("big", "unpack", "containerd", 0.5, "big: pull+unpack vs containerd")
		ratio("tree", "unpack", "containerd", 0.6, "tree: pull+unpack vs containerd")
		ratio("tree", "unpack", "gnu-tar", 1.1, "tree: pull+unpack vs GNU tar -xzf of the first layer")
		ratio("save", "import", "ref-sha256", 1.5, "import from a pipe vs read+sha256 from a pipe")
		if c := find("save", "import"); c != nil {
			if rs := c.results["pullkit"]; len(rs) > 0 {
				p := peakRSS(rs)
				rows = append(rows, row{"import: peak RSS", fmt.Sprintf("%.1f MiB", p), "< 64 MiB", p < 64})
			}
		}
	} else {
		ratio("big", "pull", "", 1.0/3, "capped big: pull to store vs the fastest peer")
	}
	for _, op := range []string{"pull", "unpack"} {
		limit := 64.0
		if op == "unpack" {
			limit = 100
		}
		worst, where := 0.0, ""
		for _, c := range rep.cases {
			if c.op != op {
				continue
			}
			if rs := c.results["pullkit"]; len(rs) > 0 && peakRSS(rs) > worst {
				worst, where = peakRSS(rs), c.workload
			}
		}
		if where != "" {
			rows = append(rows, row{fmt.Sprintf("%s: peak RSS, worst workload", opName(op)), fmt.Sprintf("%.1f MiB (%s)", worst, where), fmt.Sprintf("≤ %.0f MiB", limit), worst <= limit})
		}
	}
	if len(rows) == 0 {
		return
	}
	w("\n## Targets\n\n| target | measured | goal | met |\n|---|---|---|---|\n")
	for _, r := range rows {
		met := "yes"
		if !r.ok {
			met = "**no**"
		}
		w("| %s | %s | %s | %s |\n", r.what, r.measured, r.goal, met)
	}
}

// checks reports whether the contenders unpacked the same trees.
func (rep report) checks(b *strings.Builder) {
	var notes []string
	unpacked := false
	for _, c := range rep.cases {
		unpacked = unpacked || c.op == "unpack"
		if c.op != "unpack" {
			continue
		}
		var first string
		var want result
		for _, con := range []string{"pullkit", "containerd", "containerd-chunked", "ggcr"} {
			rs := c.results[con]
			if len(rs) == 0 {
				continue
			}
			got := rs[0]
			if first == "" {
				first, want = con, got
				continue
			}
			if got.Files != want.Files || got.Dirs != want.Dirs || got.Links != want.Links || got.Bytes != want.Bytes {
				notes = append(notes, fmt.Sprintf("%s: %s unpacked %d files, %d dirs, %d symlinks, %d bytes; %s %d, %d, %d, %d",
					c.workload, con, got.Files, got.Dirs, got.Links, got.Bytes, first, want.Files, want.Dirs, want.Links, want.Bytes))
			}
		}
	}
	if !unpacked {
		return
	}
	fmt.Fprintf(b, "\n## Checks\n\n")
	if len(notes) == 0 {
		fmt.Fprintf(b, "Every contender unpacked the same trees (counts of files, directories, symlinks and bytes).\n")
		return
	}
	for _, n := range notes {
		fmt.Fprintf(b, "- differs: %s\n", n)
	}
}
