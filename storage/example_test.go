package storage_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/hearth-iot/hearth/storage"
)

func ExampleStore_Write() {
	dir, err := os.MkdirTemp("", "hearth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := storage.Open(filepath.Join(dir, "hearth.db"), storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, temp := range []string{"21.5", "22.0"} {
		msg := storage.Message{Type: 3, Topic: "home/kitchen/temp", Payload: []byte(temp), Retain: true}
		// Write returns once the change is synced to disk.
		if err := s.Write(ctx, storage.PutRetained(msg, time.Now())); err != nil {
			log.Fatal(err)
		}
	}

	r, found, err := s.Retained("home/kitchen/temp")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(found, string(r.Message.Payload), r.Version)

	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: true 22.0 2
}

// A record is written against the version it was read at: a writer that
// read an older version gets ErrConflict and must read again.
func ExamplePutRecord() {
	dir, err := os.MkdirTemp("", "hearth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := storage.Open(filepath.Join(dir, "hearth.db"), storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	update := func(doc []byte, writer string) error {
		r, _, err := s.Record("config/thermostat")
		if err != nil {
			return err
		}
		base := r.Version // 0 if there is no record yet
		return s.Write(ctx, storage.PutRecord(storage.Retained{
			Message:    storage.Message{Type: 3, Topic: "config/thermostat", Payload: doc, Origin: writer},
			Version:    base + 1,
			Modified:   time.Now().UnixNano(),
			Structured: true,
		}, base))
	}
	// {"target": 21}, in deterministic CBOR.
	if err := update([]byte{0xa1, 0x66, 't', 'a', 'r', 'g', 'e', 't', 0x15}, "app"); err != nil {
		log.Fatal(err)
	}

	// A writer that based its change on version 0 lost the race.
	stale := storage.PutRecord(storage.Retained{
		Message: storage.Message{Topic: "config/thermostat", Payload: []byte{0xa0}, Origin: "late"},
		Version: 1,
	}, 0)
	err = s.Write(ctx, stale)
	fmt.Println(errors.Is(err, storage.ErrConflict))

	r, _, err := s.Record("config/thermostat")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Version, r.Structured, r.Message.Origin)

	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// true
	// 1 true app
}
