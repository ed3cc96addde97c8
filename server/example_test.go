package server_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/server"
)

// A Go program embeds rendezvous: it starts a server on a free loopback
// port, stores a value and reads it back over HTTP, and stops the server.
func Example() {
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0" // any free port; Addr says which
	cfg.Data = ""            // in memory; a file name keeps the keys across restarts
	srv, err := server.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	// The listener is bound already: requests wait for Serve, not fail.
	go srv.Serve(context.Background())
	base := "http://" + srv.Addr().String()

	resp, err := http.Post(base+"/set/greeting?ttl=1m", "text/plain", strings.NewReader("hello"))
	if err != nil {
		log.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("set: %s %s\n", resp.Status, answer)

	resp, err = http.Get(base + "/get/greeting")
	if err != nil {
		log.Fatal(err)
	}
	value, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("get: %s %s\n", resp.Status, value)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// set: 200 OK OK
	// get: 200 OK hello
}
