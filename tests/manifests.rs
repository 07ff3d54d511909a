//! The Kubernetes manifests in `manifests/`: kubectl accepts them as the objects
//! they claim to be, every field is one Kubernetes knows (a typo would be silently
//! dropped by the API server), and every kproxy container meets the "restricted"
//! Pod Security Standard and probes itself with `kproxy check`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use serde::Deserialize;
use serde_yaml::Value;

use support::*;

const MANIFESTS: &[&str] = &[
    "apiserver-via-sidecar.yaml",
    "native-sidecar.yaml",
    "rbac.yaml",
];

fn documents(name: &str) -> Vec<Value> {
    let path = format!("{}/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn pods() -> Vec<Value> {
    MANIFESTS
        .iter()
        .flat_map(|m| documents(m))
        .filter(|d| d["kind"] == "Pod")
        .collect()
}

/// The fields each part of our manifests may use: a small schema, enough to
/// catch a misspelt key (which Kubernetes would drop without a word).
fn allowed_keys(at: &str) -> &'static [&'static str] {
    match at {
        "" => &[
            "apiVersion",
            "kind",
            "metadata",
            "spec",
            "rules",
            "subjects",
            "roleRef",
        ],
        "metadata" => &["name", "namespace", "labels", "annotations"],
        "spec" => &[
            "serviceAccountName",
            "securityContext",
            "containers",
            "initContainers",
        ],
        "spec.securityContext" => &[
            "runAsNonRoot",
            "runAsUser",
            "runAsGroup",
            "fsGroup",
            "seccompProfile",
        ],
        "container" => &[
            "name",
            "image",
            "imagePullPolicy",
            "command",
            "args",
            "env",
            "ports",
            "restartPolicy",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "securityContext",
            "resources",
        ],
        "container.securityContext" => &[
            "runAsNonRoot",
            "runAsUser",
            "runAsGroup",
            "readOnlyRootFilesystem",
            "allowPrivilegeEscalation",
            "capabilities",
            "seccompProfile",
        ],
        "seccompProfile" => &["type"],
        "capabilities" => &["drop", "add"],
        "probe" => &[
            "exec",
            "periodSeconds",
            "timeoutSeconds",
            "failureThreshold",
            "initialDelaySeconds",
            "successThreshold",
        ],
        "exec" => &["command"],
        "resources" => &["requests", "limits"],
        "quantities" => &["cpu", "memory"],
        "port" => &["name", "containerPort", "protocol"],
        "env" => &["name", "value"],
        "rule" => &["apiGroups", "resources", "verbs"],
        "subject" => &["kind", "name", "namespace", "apiGroup"],
        "roleRef" => &["apiGroup", "kind", "name"],
        other => panic!("no schema for {other}"),
    }
}

fn check_keys(value: &Value, at: &str, path: &str) {
    let Some(map) = value.as_mapping() else {
        panic!("{path} is not a mapping")
    };
    for (key, child) in map {
        let key = key.as_str().unwrap();
        assert!(
            allowed_keys(at).contains(&key),
            "unknown field {path}.{key}"
        );
        let child_at = match (at, key) {
            ("", "metadata") => "metadata",
            ("", "spec") => "spec",
            ("", "roleRef") => "roleRef",
            ("spec", "securityContext") => "spec.securityContext",
            ("container", "securityContext") => "container.securityContext",
            (_, "seccompProfile") => "seccompProfile",
            ("container.securityContext", "capabilities") => "capabilities",
            ("container", "livenessProbe" | "readinessProbe" | "startupProbe") => "probe",
            ("probe", "exec") => "exec",
            ("container", "resources") => "resources",
            ("resources", _) => "quantities",
            _ => {
                let item_at = match (at, key) {
                    ("spec", "containers" | "initContainers") => "container",
                    ("container", "ports") => "port",
                    ("container", "env") => "env",
                    ("", "rules") => "rule",
                    ("", "subjects") => "subject",
                    _ => continue,
                };
                for (i, item) in child.as_sequence().unwrap().iter().enumerate() {
                    check_keys(item, item_at, &format!("{path}.{key}[{i}]"));
                }
                continue;
            }
        };
        check_keys(child, child_at, &format!("{path}.{key}"));
    }
}

#[test]
fn every_field_is_a_known_kubernetes_field() {
    for name in MANIFESTS {
        for doc in documents(name) {
            check_keys(&doc, "", name);
        }
    }
}

#[test]
fn kubectl_accepts_every_manifest() {
    // kubectl needs discovery to map kinds to resources: the fake API server has it.
    let fake = FakeApiServer::start();
    let proxy = Kproxy::in_cluster(&fake, &[]);
    for name in MANIFESTS {
        let path = format!("{}/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
        let (code, out, err) = kubectl(
            &proxy,
            &[
                "create",
                "--dry-run=client",
                "--validate=false",
                "-o",
                "name",
                "-f",
                &path,
            ],
        );
        assert_eq!(code, 0, "{name}: {err}");
        let kinds: Vec<String> = documents(name)
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap().to_lowercase(),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        let printed: Vec<&str> = out.lines().collect();
        let expected: Vec<String> = kinds
            .iter()
            .map(|k| {
                k.replacen("role/", "role.rbac.authorization.k8s.io/", 1)
                    .replacen("rolebinding/", "rolebinding.rbac.authorization.k8s.io/", 1)
            })
            .collect();
        assert_eq!(printed, expected, "{name}");
    }
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod["spec"][*k].as_sequence())
        .flatten()
        .collect()
}

/// A field of the container's securityContext, or else the Pod's.
fn security<'a>(pod: &'a Value, container: &'a Value, field: &str) -> &'a Value {
    match &container["securityContext"][field] {
        Value::Null => &pod["spec"]["securityContext"][field],
        v => v,
    }
}

#[test]
fn every_container_meets_the_restricted_pod_security_standard() {
    for pod in pods() {
        for c in containers(&pod) {
            let name = c["name"].as_str().unwrap();
            assert_eq!(
                security(&pod, c, "runAsNonRoot"),
                &Value::Bool(true),
                "{name}"
            );
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"],
                Value::Bool(false),
                "{name}"
            );
            assert_eq!(
                c["securityContext"]["capabilities"]["drop"],
                serde_yaml::from_str::<Value>("[ALL]").unwrap(),
                "{name}"
            );
            assert_eq!(
                security(&pod, c, "seccompProfile")["type"],
                "RuntimeDefault",
                "{name}"
            );
            // The kubelet can only verify runAsNonRoot with a numeric user.
            assert!(
                security(&pod, c, "runAsUser")
                    .as_u64()
                    .is_some_and(|u| u > 0),
                "{name}"
            );
        }
    }
}

#[test]
fn kproxy_containers_are_hardened_sized_and_probe_themselves() {
    let mut seen = 0;
    for pod in pods() {
        for c in containers(&pod)
            .into_iter()
            .filter(|c| c["image"].as_str().unwrap().contains("kproxy"))
        {
            seen += 1;
            let sc = &c["securityContext"];
            assert_eq!(sc["runAsNonRoot"], Value::Bool(true));
            assert_eq!(sc["runAsUser"].as_u64(), Some(65532));
            assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
            for field in ["cpu", "memory"] {
                assert!(
                    c["resources"]["requests"][field].is_string(),
                    "requests.{field}"
                );
            }
            assert!(c["resources"]["limits"]["memory"].is_string());
            assert!(c["args"].is_null(), "in a Pod kproxy needs no arguments");
            let command = |probe: &str| -> Vec<String> {
                serde_yaml::from_value(c[probe]["exec"]["command"].clone()).unwrap()
            };
            assert_eq!(
                command("livenessProbe"),
                ["/kproxy", "check"],
                "liveness must not ask the API server"
            );
            assert_eq!(
                &command("readinessProbe")[..3],
                ["/kproxy", "check", "--ready"]
            );
            if c["restartPolicy"] == "Always" {
                assert_eq!(command("startupProbe"), ["/kproxy", "check"]);
            }
        }
    }
    assert_eq!(seen, 2);
    let native = documents("native-sidecar.yaml").remove(0);
    let init = &native["spec"]["initContainers"][0];
    assert_eq!(
        init["restartPolicy"], "Always",
        "a native sidecar is an init container that keeps running"
    );
}
