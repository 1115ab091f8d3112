// Package config loads and validates edgebroker's configuration: a set of
// Kubernetes-style YAML documents in the language of Azure IoT Operations'
// MQTT broker (BrokerListener, BrokerAuthentication, BrokerAuthorization,
// Broker) and its dataflows (DataflowEndpoint, Dataflow: see Set.Flows), of
// cert-manager (Issuer, ClusterIssuer, Certificate) and of Kubernetes
// (Secret, ConfigMap), so AIO users apply the manifests they already have,
// plus the appliance's own kind in group appliance.edgebroker.dev (Device:
// host name, addressing, NTP, Wi-Fi).
//
// Load and LoadPath read files, Parse reads one file's documents; all
// three are strict (unknown kinds, apiVersions and fields are errors) but
// accept and drop what real manifests carry and the appliance has no use
// for: metadata.uid, resourceVersion and other server-set metadata,
// status, and spec.brokerRef (and a Dataflow's spec.profileRef).
// Set.Validate checks a whole configuration at once. Every error is an
// *Error naming file, line, resource, field path and problem; functions
// return them all together as Errors.
//
// A configuration is declarative: a Set replaces the previous one as a
// unit. Default returns the embedded default the appliance runs until a
// configuration is applied.
//
// The package reads only the bytes and file systems it is given and
// imports nothing from the rest of edgebroker.
package config
