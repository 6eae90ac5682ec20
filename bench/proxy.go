package main

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cappedProxy is a TCP proxy on 127.0.0.1 that forwards every connection
// to a backend and limits each connection's bandwidth, in each direction,
// with its own token bucket: what a client gains by opening several
// connections, as over a real network whose per-flow throughput is capped
// by latency and loss.
type cappedProxy struct {
	ln      net.Listener
	backend string
	rate    float64 // bytes per second per connection and direction
	burst   int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	Host  string
}

func startCappedProxy(backend string, rate float64) (*cappedProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cappedProxy{ln: ln, backend: backend, rate: rate, burst: 256 << 10, conns: map[net.Conn]struct{}{}, Host: ln.Addr().String()}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *cappedProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *cappedProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *cappedProxy) handle(c net.Conn) {
	defer c.Close()
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		return
	}
	defer b.Close()
	p.track(c, true)
	p.track(b, true)
	defer p.track(c, false)
	defer p.track(b, false)
	done := make(chan struct{}, 2)
	go func() { p.copy(b, c); closeWrite(b); done <- struct{}{} }()
	go func() { p.copy(c, b); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// copy copies src to dst at most at p.rate: a token bucket of p.burst
// bytes, refilled continuously. A sleep that overshoots is credited on the
// next refill, so the rate holds however coarse the timers are.
func (p *cappedProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	tokens := float64(p.burst)
	last := time.Now()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			tokens = min(float64(p.burst), tokens+now.Sub(last).Seconds()*p.rate)
			last = now
			tokens -= float64(n)
			if tokens < 0 {
				time.Sleep(time.Duration(-tokens / p.rate * float64(time.Second)))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops accepting, cuts the open connections and waits for their
// goroutines.
func (p *cappedProxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// parseRate reads a rate such as "25MB", "25MiB", "200KB" or "1000000"
// (bytes per second).
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(s, "/s"), "ps"))
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want a positive number with an optional unit (25MB, 10MiB)", s)
	}
	return v * mult, nil
}
