package config

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/goccy/go-yaml/ast"
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
	"Dataflow": {
		"spec.operations[*].destinationSettings.headers": "a flow forwards each message with its user properties " +
			"as they are and adds or removes none; remove it",
	},
	"BrokerListener": {
		"spec.ports[*].tls.manual.secretName": "secretName is the ARM API's spelling; a manifest names the " +
			"Secret with manual: {secretRef: NAME}",
		"spec.ports[*].tls.manual.secretNamespace": "the appliance has no namespaces; remove it",
	},
}

// aioIgnored are AIO fields accepted and ignored: they describe the
// cluster a broker runs on, which the appliance is not, or the cloud
// around it. Each is removed while loading, with a warning (see
// Set.Warnings). Paths may hold list indices as [*].
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
	"Dataflow": {
		"spec.requestDiskPersistence": "a flow's session on the appliance's broker is kept as every persistent " +
			"session is, in the journal under -data",
		"spec.operations[*].sourceSettings.assetRef": "Azure Device Registry assets are cloud resources the device " +
			"does not consult; the flow subscribes to dataSources",
		"spec.operations[*].sourceSettings.serializationFormat": "a flow forwards payloads as they are, without decoding them",
		"spec.operations[*].sourceSettings.schemaRef":           "a flow forwards payloads as they are, without decoding them",
	},
	"DataflowEndpoint": {
		"spec.hostType": "it tells AIO's portal what kind of broker the endpoint is; the appliance reads endpointType and host",
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
// hdr was read from and returns a warning for each one present.
func ignoredAIOFields(hdr *Object) Errors {
	var rp report
	ignored := aioIgnored[hdr.Kind]
	for _, pattern := range sortedKeys(ignored) {
		for _, f := range findFields(hdr.src.node, splitPath(pattern), "") {
			rp.add(hdr, f.path, "AIO field %s is not supported on the appliance (%s); ignored", f.path, ignored[pattern])
			removeKeys(f.parent, f.key)
		}
	}
	if rp.err() == nil {
		return nil
	}
	return rp.errs
}

// foundField is a key present in a document: its mapping, the key and its
// field path.
type foundField struct {
	parent ast.Node
	key    string
	path   string
}

// findFields returns the fields at segs below n (prefix is n's path); a
// "*" segment stands for every element of a list.
func findFields(n ast.Node, segs []string, prefix string) []foundField {
	if n == nil {
		return nil
	}
	seg := segs[0]
	if seg == "*" {
		s, ok := unwrap(n).(*ast.SequenceNode)
		if !ok {
			return nil
		}
		var out []foundField
		for i, v := range s.Values {
			out = append(out, findFields(v, segs[1:], prefix+"["+strconv.Itoa(i)+"]")...)
		}
		return out
	}
	c := child1(n, seg)
	if c == nil {
		return nil
	}
	if len(segs) == 1 {
		return []foundField{{parent: n, key: seg, path: joinKey(prefix, seg)}}
	}
	return findFields(c, segs[1:], joinKey(prefix, seg))
}
