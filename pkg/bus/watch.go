package bus

import (
	"context"
	"errors"
)

// ErrWatchClosed is returned by ConsumeWatch when the watcher closes its updates channel while
// ctx is still live (the connection or the bucket went away): the caller restarts the watch.
var ErrWatchClosed = errors.New("watch channel closed")

// ConsumeWatch reads a JetStream KV or object store watcher's updates until ctx ends (returning
// ctx's error) or the channel closes (ErrWatchClosed): each update goes to apply, and the
// watcher's marker that the initial values are all in (a nil update) calls initialDone instead.
// The caller owns the watcher and stops it.
func ConsumeWatch[T comparable](ctx context.Context, updates <-chan T, initialDone func(), apply func(T)) error {
	var marker T
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok {
				if err := ctx.Err(); err != nil {
					return err
				}
				return ErrWatchClosed
			}
			if u == marker {
				initialDone()
				continue
			}
			apply(u)
		}
	}
}
