// Package listen matches listen filters against subscription filters.
//
// Listening lets a provider learn when someone starts or stops watching what
// it could produce, as in deepstream's listening: a device or service need
// only publish while somebody is interested. A client subscribed to
// $listen/<L>, where L is an MQTT topic filter, is told when subscriptions
// whose filter overlaps L appear or go.
//
// Two filters overlap when some topic name matches both, because that is
// exactly when a publication the listener could make would reach the
// subscriber. A listener on sensors/+/temperature therefore hears of
// subscriptions to sensors/k1/temperature, sensors/+/temperature, sensors/#
// and #, since a subscriber to any of those would receive what it produces;
// it does not hear of sensors/k1/humidity. The [MQTT-4.7.2-1] rule applies:
// a filter starting with + or # never overlaps one starting with a concrete
// $ level, because no topic starting with $ reaches it.
//
// A notification names one topic that both filters match, chosen by [Topic]
// as the most specific one, so the listener learns as much as the
// subscription tells about what is wanted. [Watched] strips the shared
// subscription prefix, since a member of a share group receives on the
// filter after the group name.
package listen
