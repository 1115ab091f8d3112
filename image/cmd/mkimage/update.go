package main

import (
	"context"
	"errors"
)

func updateMain(ctx context.Context, args []string) error {
	return errors.New("update: not implemented yet")
}
