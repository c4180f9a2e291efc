package storage_test

import (
	"context"
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
