// Package rules is Hearth's permission rules engine: it decides whether a
// client may read, create, write or delete a record, publish or subscribe
// to an event, provide or request an RPC, listen, or read presence.
//
// A rules file (YAML; docs/PERMISSIONS.md is the language reference) maps,
// per section, MQTT topic patterns with named segments (users/$uid/#) to a
// rule per action: true, false, or an expression over the user, the
// client, the incoming value (data), the stored value (oldData), the time
// (now), the named segments ($uid) and other records (record("name")).
// [Parse] and [Load] compile every expression once and report every
// problem of a file at once, each with its line; [Rules.Allowed] then
// answers for one operation, and [Rules.Uses] tells the broker whether
// that answer needs the payload decoded or the stored value read.
// [Holder] keeps the rules in force across reloads, replacing them only by
// a file without problems.
//
// # Which pattern decides
//
// Within a section the most specific matching pattern decides. Patterns are
// compared level by level from the left and the first difference decides:
// a literal level beats + and $name (equal to each other), which beat the
// end of a pattern, which beats #. So a/b beats a/+ beats a beats a/#. Two
// patterns that match the same topics (a/$x and a/+) are a load error,
// which makes the order total. An action the deciding pattern has no rule
// for is denied; with no matching pattern the file's default (deny unless
// it says allow) decides. Matching walks the topic in place without
// allocating, over a section's patterns in that order.
//
// # Why expr
//
// Expressions use github.com/expr-lang/expr rather than
// github.com/google/cel-go (now cel.dev/cel-go). expr is one module with no
// dependencies, where cel-go v0.32 brings 45 packages from six modules
// (an ANTLR runtime, protobuf well-known types, genproto, x/exp); linked
// into hearth, expr v1.17 adds 3.2 MB (20%) to the linux/arm binary and
// cel-go 5.1 MB. Its syntax (&&, in, startsWith, ?., ??) reads like the JavaScript
// of deepstream's permission rules, it type-checks against a Go struct at
// load (a rule that cannot yield a bool fails there), and it runs the
// bidding rule's compiled program on a reused VM in 0.6 to 1 µs with four
// small allocations on the shared amd64 test machine (BenchmarkAllowed). CEL's
// stronger guarantees (a specification, cost estimates) matter less for
// rules written by the operator, not by clients.
//
// # Caveats
//
// Most of expr's size is not its own code: its runtime calls
// reflect.Value.MethodByName with computed names, and the Go linker then
// keeps every exported method of every reachable type (about 1.9 MB of the
// 3.2 MB on linux/arm).
//
// Evaluation has no timeout. Expressions cannot loop without bound: the
// only loops are over collections they are given (data, user.data, a
// record) or build (1..n, bounded by expr's VM memory budget), and an
// expression has at most MaxExpressionNodes nodes. A rule that iterates a
// large document does so on every operation it guards: its cost is the
// rule author's. A record() read is a plain read, never a rule evaluation,
// so it cannot recurse; one evaluation reads at most MaxRecordReads
// different records.
//
// Rules are immutable and safe for concurrent use. The package knows
// nothing of MQTT sessions: the broker strips namespace prefixes ($rpc/,
// $listen/, $presence/, $share/<group>/) and hands in names.
package rules
