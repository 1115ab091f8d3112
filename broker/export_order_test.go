package broker

// RaceEnabled reports whether the race detector is on: the order tests
// make fewer tries under it.
const RaceEnabled = raceEnabled
