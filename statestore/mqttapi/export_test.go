package mqttapi

// SetHold makes s's workers call hold before they execute a request (a
// slow store). Call it before the first request.
func SetHold(s *Service, hold func()) { s.hold = hold }
