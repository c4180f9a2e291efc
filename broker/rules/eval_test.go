package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeRecords is a RecordReader over a map; it notes what it was asked.
type fakeRecords struct {
	values map[string]any
	err    error // returned for every read when set
	reads  []string
}

func (f *fakeRecords) Record(name string) (any, bool, error) {
	f.reads = append(f.reads, name)
	if f.err != nil {
		return nil, false, f.err
	}
	v, ok := f.values[name]
	return v, ok, nil
}

const evalRules = `
default: deny
record:
  "auctions/$id":
    read: true
    create: "'bidder' in user.roles"
    write: "user.data.canBid && data.price > oldData.price"
    delete: false
  "users/$uid/#":
    read: "user.id == $uid"
    write: "user.id == $uid && data.owner == $uid"
  "shops/$shop/items/$item":
    write: "data.key == $shop + ':' + $item"
  "office/+":
    write: "now.Hour() >= 8 && now.Hour() < 18"
  "promo/+":
    read: 'now < date("2030-01-01T00:00:00Z")'
  "orders/$id":
    create: "record('shops/open').open == true && record('limits/' + user.id).max >= data.qty"
    write: "record('shops/open').open && record('shops/open').open"
  "ghosts/+":
    read: "record('nobody') == nil"
  "readonly/#":
    read: true
  "flags/+":
    write: "data.flag"
event:
  "sensors/$room/#": {publish: "client.id startsWith 'sensor-'", subscribe: "$room != '#'"}
  "$$SYS/#": {subscribe: "'admin' in user.roles"}
  "#": {subscribe: true}
rpc:
  "kitchen/+": {provide: "'appliance' in user.roles", request: true}
listen:
  "#": {listen: "'admin' in user.roles"}
presence:
  "+": {read: "client.protocol == '5'"}
`

func mustParse(t testing.TB, src string) *Rules {
	t.Helper()
	r, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func TestAllowed(t *testing.T) {
	r := mustParse(t, evalRules)
	bidder := User{ID: "ann", Roles: []string{"bidder"}, Data: map[string]any{"canBid": true}}
	banned := User{ID: "bob", Roles: []string{"bidder"}, Data: map[string]any{"canBid": false}}
	admin := User{ID: "root", Roles: []string{"admin"}}
	price := func(p any) map[string]any { return map[string]any{"price": p} }
	records := &fakeRecords{values: map[string]any{
		"shops/open": map[string]any{"open": true},
		"limits/ann": map[string]any{"max": 10.0},
	}}
	at := func(hour int) time.Time { return time.Date(2026, 3, 1, hour, 30, 0, 0, time.UTC) }

	tests := []struct {
		name    string
		section Section
		action  Action
		topic   string
		env     Env
		want    bool
		wantErr error
	}{
		// The bidding example: data is the new value, oldData the stored one.
		{"bid higher", Record, Write, "auctions/7", Env{User: bidder, Data: price(12.5), OldData: price(10.0)}, true, nil},
		{"bid equal", Record, Write, "auctions/7", Env{User: bidder, Data: price(10.0), OldData: price(10.0)}, false, nil},
		{"bid lower", Record, Write, "auctions/7", Env{User: bidder, Data: price(9.0), OldData: price(10.0)}, false, nil},
		{"bid mixed number types", Record, Write, "auctions/7", Env{User: bidder, Data: price(11.0), OldData: price(uint64(10))}, true, nil},
		{"bid integers", Record, Write, "auctions/7", Env{User: bidder, Data: price(int64(11)), OldData: price(10.5)}, true, nil},
		{"bid by banned user", Record, Write, "auctions/7", Env{User: banned, Data: price(12.0), OldData: price(10.0)}, false, nil},
		{"bid without stored value", Record, Write, "auctions/7", Env{User: bidder, Data: price(12.0)}, false, ErrEvaluation},
		{"bid by anonymous user", Record, Write, "auctions/7", Env{Data: price(12.0), OldData: price(10.0)}, false, ErrEvaluation},
		{"bid price not a number", Record, Write, "auctions/7", Env{User: bidder, Data: price("lots"), OldData: price(10.0)}, false, ErrEvaluation},
		// Constant rules and roles.
		{"read constant true", Record, Read, "auctions/7", Env{}, true, nil},
		{"delete constant false", Record, Delete, "auctions/7", Env{User: admin}, false, nil},
		{"create with role", Record, Create, "auctions/8", Env{User: bidder}, true, nil},
		{"create without role", Record, Create, "auctions/8", Env{User: admin}, false, nil},
		// Named segments.
		{"own profile", Record, Read, "users/ann/profile", Env{User: bidder}, true, nil},
		{"own root", Record, Read, "users/ann", Env{User: bidder}, true, nil},
		{"other's profile", Record, Read, "users/bob/profile", Env{User: bidder}, false, nil},
		{"segment and data", Record, Write, "users/ann/x", Env{User: bidder, Data: map[string]any{"owner": "ann"}}, true, nil},
		{"segment and wrong data", Record, Write, "users/ann/x", Env{User: bidder, Data: map[string]any{"owner": "bob"}}, false, nil},
		{"two segments", Record, Write, "shops/s1/items/i2", Env{Data: map[string]any{"key": "s1:i2"}}, true, nil},
		{"two segments swapped", Record, Write, "shops/i2/items/s1", Env{Data: map[string]any{"key": "s1:i2"}}, false, nil},
		// now.
		{"office hours", Record, Write, "office/door", Env{Now: at(9)}, true, nil},
		{"after hours", Record, Write, "office/door", Env{Now: at(20)}, false, nil},
		{"before date", Record, Read, "promo/x", Env{Now: at(9)}, true, nil},
		{"after date", Record, Read, "promo/x", Env{Now: at(9).AddDate(10, 0, 0)}, false, nil},
		{"zero now is the clock", Record, Read, "promo/x", Env{}, time.Now().Before(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), nil},
		// record() reads.
		{"cross-record read", Record, Create, "orders/1", Env{User: bidder, Data: map[string]any{"qty": 3.0}, Records: records}, true, nil},
		{"cross-record read over limit", Record, Create, "orders/1", Env{User: bidder, Data: map[string]any{"qty": 11.0}, Records: records}, false, nil},
		{"cross-record read of missing record", Record, Create, "orders/1", Env{User: banned, Data: map[string]any{"qty": 1.0}, Records: records}, false, ErrEvaluation},
		{"missing record is nil", Record, Read, "ghosts/x", Env{Records: records}, true, nil},
		{"no reader", Record, Read, "ghosts/x", Env{}, false, ErrNoRecords},
		{"reader fails", Record, Read, "ghosts/x", Env{Records: &fakeRecords{err: errDisk}}, false, errDisk},
		// A rule that yields no bool at run time.
		{"flag true", Record, Write, "flags/a", Env{Data: map[string]any{"flag": true}}, true, nil},
		{"flag not a bool", Record, Write, "flags/a", Env{Data: map[string]any{"flag": "yes"}}, false, ErrEvaluation},
		// Missing actions and no match.
		{"missing action denied", Record, Write, "readonly/a", Env{User: admin}, false, nil},
		{"no pattern: default deny", Record, Read, "elsewhere", Env{User: admin}, false, nil},
		// Events, with filters matched as text.
		{"sensor publishes", Event, Publish, "sensors/kitchen/temp", Env{Client: Client{ID: "sensor-1"}}, true, nil},
		{"non-sensor publishes", Event, Publish, "sensors/kitchen/temp", Env{Client: Client{ID: "phone"}}, false, nil},
		{"subscribe filter with +", Event, Subscribe, "sensors/+/temp", Env{}, true, nil},
		{"subscribe filter with # as room", Event, Subscribe, "sensors/#", Env{}, false, nil},
		{"subscribe #", Event, Subscribe, "#", Env{}, true, nil},
		{"$SYS not under #", Event, Subscribe, "$SYS/broker/uptime", Env{}, false, nil},
		{"$SYS for admin", Event, Subscribe, "$SYS/broker/uptime", Env{User: admin}, true, nil},
		{"event missing action", Event, Publish, "other/topic", Env{User: admin}, false, nil},
		// The other sections.
		{"rpc provide", RPC, Provide, "kitchen/oven", Env{User: User{Roles: []string{"appliance"}}}, true, nil},
		{"rpc provide without role", RPC, Provide, "kitchen/oven", Env{}, false, nil},
		{"rpc request", RPC, Request, "kitchen/oven", Env{}, true, nil},
		{"rpc other name", RPC, Request, "garage/door", Env{}, false, nil},
		{"listen admin", Listen, ListenAction, "sensors/#", Env{User: admin}, true, nil},
		{"listen other", Listen, ListenAction, "sensors/#", Env{User: bidder}, false, nil},
		{"presence v5", Presence, Read, "client-1", Env{Client: Client{Protocol: "5"}}, true, nil},
		{"presence v3", Presence, Read, "client-1", Env{Client: Client{Protocol: "3.1.1"}}, false, nil},
		// Caller mistakes.
		{"unknown action", Record, Publish, "auctions/7", Env{}, false, ErrUnknownAction},
		{"unknown section", Section(42), Read, "auctions/7", Env{}, false, ErrUnknownAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Allowed(tt.section, tt.action, tt.topic, tt.env)
			if got != tt.want {
				t.Errorf("Allowed = %v, want %v (err %v)", got, tt.want, err)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

var errDisk = errors.New("disk on fire")

func TestEvaluationErrorNamesRule(t *testing.T) {
	r := mustParse(t, evalRules)
	_, err := r.Allowed(Record, Write, "auctions/7", Env{User: User{Data: map[string]any{"canBid": true}}, Data: map[string]any{"price": 1.0}})
	if !errors.Is(err, ErrEvaluation) {
		t.Fatalf("err = %v, want ErrEvaluation", err)
	}
	msg := err.Error()
	for _, want := range []string{"rules: evaluation failed", "record.auctions/$id.write", "(line 7)", `"auctions/7"`, "column"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans lines", msg)
	}
}

// chainRules returns rules whose read of "chain" follows a chain of n
// records, each naming the next: record(record('c0').next)...
func chainRules(t *testing.T, n int) *Rules {
	e := "'c0'"
	for range n - 1 {
		e = "record(" + e + ").next"
	}
	e = "record(" + e + ") != nil"
	return mustParse(t, fmt.Sprintf("record:\n  chain: {read: %q}\n", e))
}

func chainRecords(n int) *fakeRecords {
	f := &fakeRecords{values: map[string]any{}}
	for i := range n {
		f.values[fmt.Sprintf("c%d", i)] = map[string]any{"next": fmt.Sprintf("c%d", i+1)}
	}
	return f
}

func TestRecordReadBound(t *testing.T) {
	tests := []struct {
		reads   int
		want    bool
		wantErr error
	}{
		{1, true, nil},
		{MaxRecordReads, true, nil},
		{MaxRecordReads + 1, false, ErrTooManyReads},
		{3 * MaxRecordReads, false, ErrTooManyReads},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.reads), func(t *testing.T) {
			r := chainRules(t, tt.reads)
			recs := chainRecords(tt.reads + 1)
			got, err := r.Allowed(Record, Read, "chain", Env{Records: recs})
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Allowed = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
			if tt.wantErr != nil && !errors.Is(err, ErrEvaluation) {
				t.Errorf("error %v does not wrap ErrEvaluation", err)
			}
			if len(recs.reads) > MaxRecordReads {
				t.Errorf("read %d records, more than %d", len(recs.reads), MaxRecordReads)
			}
		})
	}
}

func TestRecordReadsRepeatedNameOnce(t *testing.T) {
	cond := strings.Repeat("record('a').ok && ", 3*MaxRecordReads) + "true"
	r := mustParse(t, fmt.Sprintf("record:\n  x: {read: %q}\n", cond))
	recs := &fakeRecords{values: map[string]any{"a": map[string]any{"ok": true}}}
	got, err := r.Allowed(Record, Read, "x", Env{Records: recs})
	if !got || err != nil {
		t.Fatalf("Allowed = %v, %v; want true", got, err)
	}
	if len(recs.reads) != 1 {
		t.Errorf("reader asked %d times, want once", len(recs.reads))
	}
	// A new evaluation starts afresh.
	if got, _ := r.Allowed(Record, Read, "x", Env{Records: recs}); !got || len(recs.reads) != 2 {
		t.Errorf("second evaluation: %v after %d reads, want true after 2", got, len(recs.reads))
	}
}

func TestDefault(t *testing.T) {
	const rules = `
record:
  "open/#": {read: true}
  "shut/#": ~
`
	tests := []struct {
		name, def string
		topic     string
		action    Action
		want      bool
	}{
		{"deny: no match", "", "elsewhere", Read, false},
		{"deny written: no match", "default: deny\n", "elsewhere", Read, false},
		{"allow: no match", "default: allow\n", "elsewhere", Write, true},
		{"allow: matched rule", "default: allow\n", "open/a", Read, true},
		{"allow: matched pattern without the action", "default: allow\n", "open/a", Write, false},
		{"allow: matched pattern without rules", "default: allow\n", "shut/a", Read, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.def+rules)
			if got, err := r.Allowed(Record, tt.action, tt.topic, Env{}); got != tt.want || err != nil {
				t.Errorf("Allowed = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestNilRulesDenies(t *testing.T) {
	var r *Rules
	if got, err := r.Allowed(Record, Read, "a", Env{}); got || err != nil {
		t.Errorf("nil Rules: Allowed = %v, %v; want false, nil", got, err)
	}
	if d, o := r.Uses(Record, Write, "a"); d || o {
		t.Errorf("nil Rules: Uses = %v, %v", d, o)
	}
	for _, src := range []string{"", "# nothing\n", "---\n", "record:\n"} {
		r := mustParse(t, src)
		if got, err := r.Allowed(Record, Read, "a", Env{}); got || err != nil {
			t.Errorf("rules %q: Allowed = %v, %v; want false, nil", src, got, err)
		}
	}
}

func TestUses(t *testing.T) {
	r := mustParse(t, evalRules)
	tests := []struct {
		section           Section
		action            Action
		topic             string
		wantData, wantOld bool
	}{
		{Record, Write, "auctions/7", true, true},
		{Record, Read, "auctions/7", false, false},   // constant
		{Record, Create, "auctions/7", false, false}, // user only
		{Record, Write, "users/ann", true, false},
		{Record, Read, "users/ann", false, false},
		{Record, Create, "orders/1", true, false}, // record() does not count
		{Record, Write, "readonly/a", false, false},
		{Record, Write, "nowhere", false, false},
		{Event, Publish, "sensors/k/t", false, false},
		{Record, Publish, "auctions/7", false, false}, // unknown action
	}
	for _, tt := range tests {
		d, o := r.Uses(tt.section, tt.action, tt.topic)
		if d != tt.wantData || o != tt.wantOld {
			t.Errorf("Uses(%s, %s, %q) = %v, %v; want %v, %v", tt.section, tt.action, tt.topic, d, o, tt.wantData, tt.wantOld)
		}
	}
}

func TestConstantExpressionsFolded(t *testing.T) {
	r := mustParse(t, `record: {a: {read: "true", write: "not true", create: "'x' == 'x'"}}`)
	want := map[Action]bool{Read: true, Write: false, Create: true}
	for a, v := range want {
		e := r.sections[Record][0]
		if ru := e.rules[actionIndex(Record, a)]; ru.prog != nil || ru.val != v {
			t.Errorf("%s: constant expression kept as a program (%v) or wrong (%v)", a, ru.prog != nil, ru.val)
		}
	}
}

func TestAllowedConcurrent(t *testing.T) {
	r := mustParse(t, evalRules)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				uid := fmt.Sprintf("u%d-%d", g, i)
				env := Env{User: User{ID: uid}, Data: map[string]any{"owner": uid}}
				if ok, err := r.Allowed(Record, Write, "users/"+uid+"/x", env); !ok || err != nil {
					t.Errorf("Allowed(%s) = %v, %v", uid, ok, err)
					return
				}
				if ok, _ := r.Allowed(Record, Write, "users/other/x", env); ok {
					t.Errorf("Allowed(other) for %s", uid)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func TestAllowedAllocations(t *testing.T) {
	r := mustParse(t, evalRules)
	env := Env{Client: Client{ID: "sensor-1"}}
	if n := testing.AllocsPerRun(100, func() { r.Allowed(Record, Read, "auctions/7", env) }); n != 0 {
		t.Errorf("a constant rule allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { r.Allowed(Record, Read, "nowhere/at/all", env) }); n != 0 {
		t.Errorf("the default allocates %v times", n)
	}
}
