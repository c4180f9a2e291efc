package record

import (
	"container/list"
	"sync"
)

// cache holds recently used records, least recently used first out, within
// a memory bound. Writers (which lead their record) put what they commit;
// readers fill in what they read from the store, unless a write happened
// meanwhile, which could make what they read stale.
type cache struct {
	mu    sync.Mutex
	limit int
	used  int
	gen   uint64 // incremented by every put and forget
	lru   *list.List
	items map[string]*list.Element // name -> element holding a *Record
}

func newCache(limit int) *cache {
	return &cache{limit: limit, lru: list.New(), items: make(map[string]*list.Element)}
}

func (c *cache) get(name string) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[name]
	if !ok {
		return Record{}, false
	}
	c.lru.MoveToFront(e)
	return *e.Value.(*Record), true
}

// generation returns a number that changes with every put and forget.
func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores the committed r, replacing any older version.
func (c *cache) put(r Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.insert(r)
}

// fill stores r, read from the store when the generation was gen, unless
// the cache changed since.
func (c *cache) fill(r Record, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.items[r.Name]; ok {
		return
	}
	c.insert(r)
}

func (c *cache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.items[name]; ok {
		c.remove(e)
	}
}

// forgetOlder drops name if the cache holds a version older than version,
// which has just committed: a reader may have filled in the store's
// previous version while the change was pending and evicted.
func (c *cache) forgetOlder(name string, version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.items[name]; ok && e.Value.(*Record).Version < version {
		c.remove(e)
	}
}

func (c *cache) insert(r Record) {
	if e, ok := c.items[r.Name]; ok {
		c.remove(e)
	}
	size := r.size()
	if size > c.limit {
		return
	}
	c.items[r.Name] = c.lru.PushFront(&r)
	c.used += size
	for c.used > c.limit {
		c.remove(c.lru.Back())
	}
}

func (c *cache) remove(e *list.Element) {
	r := c.lru.Remove(e).(*Record)
	delete(c.items, r.Name)
	c.used -= r.size()
}

// stats returns the number of cached records and their estimated bytes.
func (c *cache) stats() (records, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.used
}
