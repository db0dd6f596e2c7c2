// A minimal push server with gorilla/websocket, as bench/compare.sh measures it against
// wspush: upgrades on any path, and on SIGUSR1 writes one websocket.PreparedMessage,
// {"time":<epoch ms>,"seq":<n>}, to every connection, from one goroutine. Each connection
// has the read loop gorilla requires (it handles close and ping frames). Logs key=value
// lines to stderr like wspush.
//
//	wsppeer [--port 8080] [--bind 127.0.0.1]   (or PORT, BIND in the environment)
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var (
	upgrader = websocket.Upgrader{} // defaults: reuse the HTTP server's 4 KiB buffers
	mu       sync.Mutex
	conns    = make(map[*websocket.Conn]struct{})
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// The application must read to process close and ping frames; it drops the conn on error.
func readLoop(c *websocket.Conn) {
	for {
		if _, _, err := c.NextReader(); err != nil {
			break
		}
	}
	mu.Lock()
	delete(conns, c)
	mu.Unlock()
	c.Close()
}

func serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil) // writes the HTTP error itself
	if err != nil {
		return
	}
	mu.Lock()
	conns[c] = struct{}{}
	mu.Unlock()
	go readLoop(c)
}

func count() int {
	mu.Lock()
	defer mu.Unlock()
	return len(conns)
}

// Writes the same prepared frame to a snapshot of the connections; a failed write closes
// that conn (its read loop then removes it).
func broadcast(seq uint64) {
	t0 := time.Now()
	payload := fmt.Sprintf(`{"time":%d,"seq":%d}`, t0.UnixMilli(), seq)
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, []byte(payload))
	if err != nil {
		log.Printf("event=broadcast_failed seq=%d error=%q", seq, err)
		return
	}
	mu.Lock()
	list := make([]*websocket.Conn, 0, len(conns))
	for c := range conns {
		list = append(list, c)
	}
	mu.Unlock()
	written, failed := 0, 0
	deadline := t0.Add(10 * time.Second) // a stuck client cannot hold the loop longer
	for _, c := range list {
		c.SetWriteDeadline(deadline)
		if err := c.WritePreparedMessage(pm); err != nil {
			failed++
			c.Close()
			continue
		}
		written++
	}
	log.Printf("event=broadcast seq=%d conns=%d written=%d failed=%d loop_ms=%.3f", seq, len(list),
		written, failed, float64(time.Since(t0).Microseconds())/1000)
}

func main() {
	log.SetFlags(0)
	port := flag.Int("port", 0, "listen port (default $PORT or 8080)")
	bind := flag.String("bind", envOr("BIND", "127.0.0.1"), "listen address")
	flag.Parse()
	if *port == 0 {
		*port, _ = strconv.Atoi(envOr("PORT", "8080"))
	}
	// Go 1.19 already raises the soft nofile limit to the hard one; say what we have.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl) // best effort: the log shows the result
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	addr := fmt.Sprintf("%s:%d", *bind, *port)
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(serveWS)}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("event=listen_failed addr=%s error=%q", addr, err)
	}
	log.Printf("event=listening server=go-gorilla addr=%s nofile=%d gomaxprocs=default", addr, rl.Cur)

	usr1 := make(chan os.Signal, 16)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		tick := time.NewTicker(5 * time.Second)
		var seq uint64
		for {
			select {
			case <-usr1:
				seq++
				broadcast(seq)
			case <-tick.C:
				log.Printf("event=conns conns=%d", count())
			}
		}
	}()
	log.Fatalf("event=serve_failed error=%q", srv.Serve(ln))
}
