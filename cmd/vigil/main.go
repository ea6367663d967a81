// Command vigil is Vigil's single binary: `vigil run` starts every role in one process with an
// embedded NATS server; `vigil ingest|analyze|sink` start one role against any NATS URL.
// Run `vigil --help` for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-video/vigil/cmd/vigil/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{Args: os.Args[1:], Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: version})
	stop()
	os.Exit(code)
}
