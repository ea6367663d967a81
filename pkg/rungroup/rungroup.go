// Package rungroup runs a process's long-lived parts together and stops them in a fixed order:
// the oklog/run pattern (prometheus cmd/prometheus/main.go), where each actor is an execute and
// an interrupt function, with one difference: the actors are stopped one after another, in the
// order they were added, each only once the one before it has returned. The order in which a
// command builds its group is therefore its shutdown order (for a pipeline: the source first,
// then each stage after it, so every stage finishes what the one before it handed over).
package rungroup

import (
	"errors"
	"sync"
)

// Group is a set of actors. The zero value is an empty group ready to use. A Group is built by
// one goroutine and run once.
type Group struct {
	actors []actor
}

type actor struct {
	execute   func() error
	interrupt func()
}

// Add adds an actor. execute runs in a goroutine of its own once Run is called and must block
// until the actor is done or interrupted; interrupt must make execute return soon. interrupt is
// called exactly once per Run, also when execute has already returned (so it must do no harm
// then: a context.CancelFunc is typical), and never before Run started every execute.
func (g *Group) Add(execute func() error, interrupt func()) {
	g.actors = append(g.actors, actor{execute, interrupt})
}

// Run starts every actor and blocks until the first of them returns (with or without an error).
// It then interrupts the actors in the order they were added, waiting for each one's execute to
// return before interrupting the next. It returns every actor's error, joined in the order the
// actors were added; nil when all returned nil or the group is empty.
func (g *Group) Run() error {
	if len(g.actors) == 0 {
		return nil
	}
	errs := make([]error, len(g.actors))
	done := make([]chan struct{}, len(g.actors))
	first := make(chan struct{})
	var once sync.Once
	for i, a := range g.actors {
		done[i] = make(chan struct{})
		go func() {
			defer close(done[i])
			errs[i] = a.execute()
			once.Do(func() { close(first) })
		}()
	}
	<-first
	for i, a := range g.actors {
		a.interrupt()
		<-done[i]
	}
	return errors.Join(errs...)
}
