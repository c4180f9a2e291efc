package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/broker/auth"
	"github.com/hearth-iot/hearth/storage"
)

// serve runs the broker until SIGINT or SIGTERM. Exit codes: 0 after a clean
// shutdown, 1 on a runtime failure or an unclean shutdown, 2 for bad
// configuration.
func serve(args []string) int {
	cfg, err := loadConfig(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var probs problems
		if errors.As(err, &probs) {
			fmt.Fprintf(os.Stderr, "hearth: configuration has %d problem(s):\n", len(probs))
			for _, p := range probs {
				fmt.Fprintf(os.Stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(os.Stderr, "hearth: %v\n", err)
		}
		return 2
	}
	if cfg.check {
		fmt.Println("hearth: configuration ok")
		return 0
	}

	log := newLogger(cfg)
	cfg.broker.Logger = log

	// Signals are caught from here on, so a signal during start-up still
	// shuts down cleanly.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	metrics := broker.NewMetrics(log)
	opts := cfg.store
	opts.OnCommit = metrics.ObserveCommit
	opts.OnError = metrics.StoreError
	path := filepath.Join(cfg.dataDir, dbFile)
	store, err := storage.Open(path, opts)
	if err != nil {
		log.Error("cannot open store", "path", path, "error", err)
		return 1
	}
	log.Info("store open", "path", path)

	b, err := broker.New(cfg.broker, store, metrics)
	if err != nil {
		log.Error("cannot create broker", "error", err)
		closeStore(log, store)
		return 1
	}
	if err := b.Start(); err != nil {
		log.Error("cannot start broker", "error", err)
		closeStore(log, store)
		return 1
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if cfg.users != nil {
		go cfg.users.Watch(watchCtx, func(err error) { logReload(log, cfg.users, "changed", err) })
	}
	var sig os.Signal
	for sig == nil {
		select {
		case sig = <-sigs:
		case <-hup:
			if cfg.users != nil {
				logReload(log, cfg.users, "SIGHUP", cfg.users.Reload())
			}
		}
	}
	stopWatch()
	log.Info("signal received: shutting down (a second signal exits at once)", "signal", sig.String(), "timeout", cfg.shutdown)
	go func() {
		sig := <-sigs
		log.Error("second signal: exiting without a clean shutdown", "signal", sig.String())
		os.Exit(1)
	}()

	code := 0
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdown)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
		code = 1
	}
	if !closeStore(log, store) {
		code = 1
	}
	log.Info("stopped", "exit_code", code)
	return code
}

// logReload logs the outcome of reloading the users file: on an error, the
// users in force stay, and every problem is logged with its line.
func logReload(log *slog.Logger, f *auth.File, why string, err error) {
	if err == nil {
		log.Info("users file reloaded", "path", f.Path(), "why", why)
		return
	}
	for _, e := range unjoin(err) {
		log.Error("users file not reloaded: the users in force stay", "path", f.Path(), "why", why, "error", e)
	}
}

func closeStore(log *slog.Logger, s *storage.Store) bool {
	if err := s.Close(); err != nil {
		log.Error("store close failed", "error", err)
		return false
	}
	log.Info("store flushed and closed")
	return true
}

func newLogger(cfg *config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if strings.EqualFold(cfg.file.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
