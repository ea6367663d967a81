// Command natsnode is nats-server built from the nats-server Go module this repository pins:
// the same flags and configuration file format (nats-server --help), for the multi-process scale
// test and for a laptop without a nats-server binary. `go build ./test/scale/natsnode`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	fs := flag.NewFlagSet("natsnode", flag.ExitOnError)
	opts, err := server.ConfigureOptions(fs, os.Args[1:], server.PrintServerAndExit, fs.Usage, server.PrintTLSHelpAndDie)
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsnode: %v\n", err)
		os.Exit(1)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsnode: %v\n", err)
		os.Exit(1)
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		fmt.Fprintf(os.Stderr, "natsnode: %v\n", err)
		os.Exit(1)
	}
	s.WaitForShutdown()
}
