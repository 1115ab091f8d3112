package config

import (
	"fmt"
	"regexp"
)

// aioUnsupported are AIO fields the appliance refuses, by kind and field
// path (list indices as [*]): why, and what to use instead. A manifest
// with one gets this instead of "unknown field", which reads as a typo.
var aioUnsupported = map[string]map[string]string{
	"Broker": {
		"spec.persistence": "the appliance always keeps retained messages, sessions and the state store on disk " +
			"under -data; remove it",
	},
	"BrokerAuthentication": {
		"spec.authenticationMethods[*].x509Settings.additionalValidation": "Azure Device Registry is a cloud " +
			"service the device does not consult; trust client certificates with trustedClientCaCert and " +
			"authorizationAttributes, and remove it",
	},
	"BrokerListener": {
		"spec.ports[*].tls.manual.secretName": "secretName is the ARM API's spelling; a manifest names the " +
			"Secret with manual: {secretRef: NAME}",
		"spec.ports[*].tls.manual.secretNamespace": "the appliance has no namespaces; remove it",
	},
}

// aioIgnored are AIO fields accepted and ignored: they describe the
// cluster a broker runs on, which the appliance is not. Each is removed
// while loading, with a warning (see Set.Warnings).
var aioIgnored = map[string]map[string]string{
	"Broker": {
		"spec.cardinality":                                       "one broker process on one device: no frontend or backend replicas",
		"spec.diagnostics":                                       "the appliance's metrics are at the status endpoint's /metrics; it has no self-check pods or traces",
		"spec.generateResourceLimits":                            "no Kubernetes CPU limits on the device",
		"spec.advanced.encryptInternalTraffic":                   "one process: no internal traffic to encrypt",
		"spec.advanced.internalCerts":                            "one process: no internal certificates",
		"spec.diskBackedMessageBuffer.ephemeralVolumeClaimSpec":  "the journal lives under -data on the device's own disk; maxSize is its budget",
		"spec.diskBackedMessageBuffer.persistentVolumeClaimSpec": "the journal lives under -data on the device's own disk; maxSize is its budget",
	},
}

var listIndex = regexp.MustCompile(`\[\d+\]`)

// aioUnsupportedMsg returns the message for an AIO field kind does not
// support at path, or "".
func aioUnsupportedMsg(kind, path string) string {
	why, ok := aioUnsupported[kind][listIndex.ReplaceAllString(path, "[*]")]
	if !ok {
		return ""
	}
	return fmt.Sprintf("AIO field %s is not supported on the appliance (%s)", path, why)
}

// ignoredAIOFields removes the fields of aioIgnored from the document
// hdr was read from and returns a warning for each one present, in
// document order.
func ignoredAIOFields(hdr *Object) Errors {
	var rp report
	for path, why := range aioIgnored[hdr.Kind] {
		segs := splitPath(path)
		parent := hdr.src.node
		for _, seg := range segs[:len(segs)-1] {
			parent = child1(parent, seg)
		}
		if parent == nil || child1(parent, segs[len(segs)-1]) == nil {
			continue
		}
		rp.add(hdr, path, "AIO field %s is not supported on the appliance (%s); ignored", path, why)
		removeKeys(parent, segs[len(segs)-1])
	}
	if rp.err() == nil {
		return nil
	}
	return rp.errs
}
