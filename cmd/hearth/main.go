// Command hearth runs the Hearth realtime edge broker.
//
//	hearth serve [--config FILE] [--data DIR] [--mqtt ADDR] [--http ADDR] [--check]
//	hearth user add|remove|list [--users FILE] ...
//	hearth version
package main

import (
	"fmt"
	"os"
)

const usage = `hearth: a realtime edge broker (MQTT with records, RPC, presence and device sync)

Usage:
  hearth serve [flags]   run the broker (hearth serve -h lists the flags)
  hearth user add|remove|list
                         edit the users file (hearth user -h for more)
  hearth version         print the version, commit, Go version and platform
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches a subcommand and returns the process exit code.
func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:])
	case "user":
		return userCommand(args[1:])
	case "version", "--version", "-version":
		fmt.Println(versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "hearth: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
