package rules

import (
	"fmt"
	"strings"
	"testing"
)

// benchRules has 20 record patterns, a realistic large rules file.
var benchRules = func() string {
	var b strings.Builder
	b.WriteString("record:\n")
	for _, e := range [][2]string{
		{"auctions/$id", `{read: true, write: "user.data.canBid && data.price > oldData.price"}`},
		{"users/$uid/#", `{read: "user.id == $uid", write: "user.id == $uid"}`},
		{"sensors/$room/temp", `{read: true}`},
		{"sensors/$room/humidity", `{read: true}`},
		{"sensors/$room/#", `{read: "'admin' in user.roles"}`},
		{"devices/$dev/state", `{read: true, write: "client.id == $dev"}`},
		{"devices/$dev/config", `{read: "client.id == $dev"}`},
		{"devices/+/logs/#", `{read: "'admin' in user.roles"}`},
		{"shops/$shop/items/$item", `{read: true, write: "'shop-' + $shop in user.roles"}`},
		{"orders/$id", `{create: "data.qty > 0"}`},
		{"config/#", `{read: true, write: "'admin' in user.roles"}`},
		{"public/#", `{read: true}`},
		{"private/$uid/#", `{read: "user.id == $uid"}`},
		{"teams/$team/members/$uid", `{read: "user.data.team == $team"}`},
		{"chat/$room/messages", `{read: true, create: "data.from == user.id"}`},
		{"chat/$room/typing", `{write: true}`},
		{"alerts/+", `{read: true}`},
		{"metrics/#", `{read: true}`},
		{"a/b/c", `{read: false}`},
		{"zz/#", `{read: true}`},
	} {
		fmt.Fprintf(&b, "  %q: %s\n", e[0], e[1])
	}
	return b.String()
}()

// BenchmarkAllowed measures a decision with 20 patterns in the section:
// the pattern scan with a constant rule (the last pattern in order), the
// bidding expression over data and oldData, a named segment, and no match.
func BenchmarkAllowed(b *testing.B) {
	r := mustParse(b, benchRules)
	if n := len(r.sections[Record]); n != 20 {
		b.Fatalf("%d patterns", n)
	}
	user := User{ID: "ann", Roles: []string{"bidder"}, Data: map[string]any{"canBid": true}}
	bid := Env{User: user, Data: map[string]any{"price": 11.0}, OldData: map[string]any{"price": 10.0}}
	tests := []struct {
		name   string
		action Action
		topic  string
		env    Env
		want   bool
	}{
		{"literal", Read, "zz/top/x", Env{User: user}, true},
		{"expression over data", Write, "auctions/7", bid, true},
		{"named segment", Read, "users/ann/profile", Env{User: user}, true},
		{"no match", Read, "nomatch/x/y", Env{User: user}, false},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ok, err := r.Allowed(Record, tt.action, tt.topic, tt.env)
				if ok != tt.want || err != nil {
					b.Fatalf("Allowed = %v, %v", ok, err)
				}
			}
		})
	}
}
