//go:build !race

package wsnet_test

const raceEnabled = false
