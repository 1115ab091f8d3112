//go:build race

package wsnet_test

// raceEnabled: the race detector changes heap and stack sizes.
const raceEnabled = true
