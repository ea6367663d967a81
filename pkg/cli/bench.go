package cli

import (
	"context"
	"errors"
)

func benchCmd(ctx context.Context, env Env, args []string) error {
	return errors.New("not yet")
}
