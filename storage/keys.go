package storage

import (
	"encoding/binary"
)

// Bucket names. The layout is versioned by formatVersion in the meta bucket.
var (
	bucketMeta          = []byte("meta")
	bucketSessions      = []byte("sessions")      // client id -> Session
	bucketSubscriptions = []byte("subscriptions") // clientKey + filter -> Subscription
	bucketInflight      = []byte("inflight")      // clientKey + packet id -> Message
	bucketRetained      = []byte("retained")      // topic -> Retained

	allBuckets = [][]byte{bucketMeta, bucketSessions, bucketSubscriptions, bucketInflight, bucketRetained}

	keyFormat = []byte("format")
)

// formatVersion is the on-disk layout version. Open refuses a file with a
// newer version rather than misreading it.
const formatVersion = 1

// clientPrefix is the key prefix of everything a client owns in the
// subscriptions and inflight buckets: the id's length as a uvarint, then the
// id. The length makes one client's prefix never a prefix of another's.
func clientPrefix(clientID string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(clientID)+8)
	b = binary.AppendUvarint(b, uint64(len(clientID)))
	return append(b, clientID...)
}

func subscriptionKey(clientID, filter string) []byte {
	return append(clientPrefix(clientID), filter...)
}

func inflightKey(clientID string, packetID uint16) []byte {
	return binary.BigEndian.AppendUint16(clientPrefix(clientID), packetID)
}
