package tasks

import "aicode/services/bus"

// RegisterCodecs lets task status changes and events travel between
// replicas (see bus.RedisBridge): both topics carry Update values.
func RegisterCodecs(b *bus.Bus) {
	b.RegisterCodec(TopicTasks, bus.JSON[Update]())
	b.RegisterCodec(TopicTask("*"), bus.JSON[Update]())
}
