package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time by the Makefile:
// -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

func versionString() string {
	c := commit
	if c == "" {
		c = "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	return fmt.Sprintf("hearth %s (commit %s) %s %s/%s", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
