// Package auth decides who may connect to the broker and who they are.
//
// An Authenticator looks at a connection's credentials and either decides
// (allow, with an Identity, or deny) or passes; a Chain asks its
// authenticators in order and the first that decides wins, so modes
// combine: device tokens first, then a users file, say. A Chain where none
// decides denies.
//
// The package knows nothing of MQTT: the broker hands it Credentials taken
// from CONNECT and the connection, and maps a Decision to a CONNACK reason
// code.
package auth
