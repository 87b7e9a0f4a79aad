//! The controller's view of a `FeatureFlag` object: decoded, or kept with its decoding error.
//!
//! kube's watcher decodes whole list pages and watch events; with the typed `FeatureFlag`,
//! one object that does not decode fails the list and stalls every flag. [`WatchedFlag`]
//! never fails to decode a well-formed Kubernetes object, so the bad one is reconciled on
//! its own (condition `InvalidSpec`) and the others carry on.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use rollgate_core::crd::{FeatureFlag, FeatureFlagStatus};
use rollgate_core::publish::configmap_name;

/// One `FeatureFlag` object as the watcher delivered it. Both variants are boxed, so that
/// neither pays for the other's size.
#[derive(Clone, Debug)]
pub enum WatchedFlag {
    Decoded(Box<FeatureFlag>),
    Undecodable(Box<UndecodableFlag>),
}

/// An object whose spec or status does not match the Rust types.
#[derive(Clone, Debug)]
pub struct UndecodableFlag {
    pub metadata: ObjectMeta,
    /// The spec as stored, for the fields that can still be read from it.
    pub spec: Value,
    /// The status, when it decodes on its own (conditions keep their transition times).
    pub status: Option<FeatureFlagStatus>,
    pub error: DecodeError,
}

/// Where decoding failed and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The field path, e.g. `spec.rollout.steps[0].percent`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl WatchedFlag {
    /// Decodes one object; fails only when it has no readable `metadata`.
    pub fn from_value(object: Value) -> Result<Self, serde_json::Error> {
        let error = match serde_path_to_error::deserialize::<_, FeatureFlag>(&object) {
            Ok(flag) => return Ok(Self::Decoded(Box::new(flag))),
            Err(error) => DecodeError {
                path: error.path().to_string(),
                message: error.into_inner().to_string(),
            },
        };
        let metadata = ObjectMeta::deserialize(object.get("metadata").unwrap_or(&Value::Null))?;
        let status = object
            .get("status")
            .and_then(|status| FeatureFlagStatus::deserialize(status).ok());
        Ok(Self::Undecodable(Box::new(UndecodableFlag {
            metadata,
            spec: object.get("spec").cloned().unwrap_or(Value::Null),
            status,
            error,
        })))
    }

    pub fn decoded(&self) -> Option<&FeatureFlag> {
        match self {
            Self::Decoded(flag) => Some(flag),
            Self::Undecodable(_) => None,
        }
    }

    pub fn status(&self) -> Option<&FeatureFlagStatus> {
        match self {
            Self::Decoded(flag) => flag.status.as_ref(),
            Self::Undecodable(flag) => flag.status.as_ref(),
        }
    }

    /// The key the flag publishes under; `None` when the spec does not say it readably.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Decoded(flag) => Some(flag.key()),
            Self::Undecodable(flag) => flag.key(),
        }
    }

    /// The ConfigMap the flag publishes into; `None` when the spec does not say it readably.
    pub fn configmap<'a>(&'a self, default: &'a str) -> Option<&'a str> {
        match self {
            Self::Decoded(flag) => Some(configmap_name(flag, default)),
            Self::Undecodable(flag) => flag.configmap(default),
        }
    }
}

impl UndecodableFlag {
    /// `spec.key` when it is a string, the name when it is absent.
    pub fn key(&self) -> Option<&str> {
        match self.spec.get("key") {
            None | Some(Value::Null) => self.metadata.name.as_deref(),
            Some(key) => key.as_str(),
        }
    }

    /// `spec.publish.configMap` when it is a string, `default` when it is absent.
    pub fn configmap<'a>(&'a self, default: &'a str) -> Option<&'a str> {
        match self.spec.pointer("/publish/configMap") {
            None | Some(Value::Null) => Some(default),
            Some(name) => name.as_str(),
        }
    }
}

impl From<FeatureFlag> for WatchedFlag {
    fn from(flag: FeatureFlag) -> Self {
        Self::Decoded(Box::new(flag))
    }
}

/// kubectl's copy of the last applied manifest: a second copy of the spec, read by kubectl
/// alone.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl<'de> Deserialize<'de> for WatchedFlag {
    /// Drops `managedFields` and kubectl's last-applied copy first: the operator reads
    /// neither, and together they are most of a small flag's bytes in the cache.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = Value::deserialize(deserializer)?;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(LAST_APPLIED);
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
        Self::from_value(object).map_err(serde::de::Error::custom)
    }
}

impl Serialize for WatchedFlag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let flag = match self {
            Self::Decoded(flag) => return flag.serialize(serializer),
            Self::Undecodable(flag) => flag,
        };
        let mut object = serializer.serialize_map(None)?;
        object.serialize_entry("apiVersion", &FeatureFlag::api_version(&()))?;
        object.serialize_entry("kind", &FeatureFlag::kind(&()))?;
        object.serialize_entry("metadata", &flag.metadata)?;
        object.serialize_entry("spec", &flag.spec)?;
        if let Some(status) = &flag.status {
            object.serialize_entry("status", status)?;
        }
        object.end()
    }
}

/// The same API resource as `FeatureFlag`; only the decoding differs.
impl Resource for WatchedFlag {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dynamic: &()) -> Cow<'_, str> {
        FeatureFlag::kind(dynamic)
    }

    fn group(dynamic: &()) -> Cow<'_, str> {
        FeatureFlag::group(dynamic)
    }

    fn version(dynamic: &()) -> Cow<'_, str> {
        FeatureFlag::version(dynamic)
    }

    fn plural(dynamic: &()) -> Cow<'_, str> {
        FeatureFlag::plural(dynamic)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Decoded(flag) => flag.meta(),
            Self::Undecodable(flag) => &flag.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Decoded(flag) => flag.meta_mut(),
            Self::Undecodable(flag) => &mut flag.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use kube::core::ObjectList;
    use serde_json::json;

    fn object(name: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "rollgate.dev/v1alpha1",
            "kind": "FeatureFlag",
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": "7"},
            "spec": spec,
        })
    }

    #[test]
    fn one_undecodable_object_does_not_fail_the_list() {
        let list = json!({
            "apiVersion": "rollgate.dev/v1alpha1",
            "kind": "FeatureFlagList",
            "metadata": {"resourceVersion": "9"},
            "items": [
                object("checkout", json!({"enabled": true, "percent": 25})),
                object("broken", json!({"enabled": true, "rollout": {"steps": [{"percent": {"value": 10}}]}})),
                object("search", json!({"enabled": false, "percent": 5})),
            ],
        });
        let list: ObjectList<WatchedFlag> = serde_json::from_value(list).unwrap();
        let names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
        assert_eq!(names, ["checkout", "broken", "search"]);
        assert_eq!(list.items[0].decoded().unwrap().spec.percent, Some(25.0));
        assert!(!list.items[2].decoded().unwrap().spec.enabled);
        let WatchedFlag::Undecodable(broken) = &list.items[1] else {
            panic!("decoded a step whose percent is an object");
        };
        assert_eq!(broken.error.path, "spec.rollout.steps[0].percent");
        assert!(
            broken.error.message.contains("invalid type"),
            "{}",
            broken.error
        );
        assert_eq!(broken.metadata.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn undecodable_flags_keep_what_can_still_be_read() {
        let mut raw = object(
            "checkout",
            json!({"key": "new-checkout", "percent": "lots", "publish": {"configMap": "team-flags"}}),
        );
        raw["status"] = json!({"phase": "Static", "percent": 25});
        let watched = WatchedFlag::from_value(raw).unwrap();
        assert_eq!(watched.key(), Some("new-checkout"));
        assert_eq!(watched.configmap("rollgate-flags"), Some("team-flags"));
        assert_eq!(watched.status().unwrap().percent, Some(25.0));
        let WatchedFlag::Undecodable(flag) = &watched else {
            panic!("decoded percent: \"lots\"");
        };
        assert_eq!(flag.error.path, "spec.percent");

        let unreadable = WatchedFlag::from_value(object(
            "checkout",
            json!({"key": 7, "publish": {"configMap": false}}),
        ))
        .unwrap();
        assert!(unreadable.decoded().is_none());
        assert_eq!(unreadable.key(), None);
        assert_eq!(unreadable.configmap("rollgate-flags"), None);

        let defaults = WatchedFlag::from_value(object("checkout", json!({"percent": []}))).unwrap();
        assert_eq!(defaults.key(), Some("checkout"));
        assert_eq!(defaults.configmap("rollgate-flags"), Some("rollgate-flags"));
    }

    #[test]
    fn the_cache_keeps_neither_managed_fields_nor_kubectls_copy() {
        let mut raw = object("checkout", json!({"enabled": true, "percent": 25}));
        raw["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update"}]);
        raw["metadata"]["annotations"] = json!({
            LAST_APPLIED: "{\"spec\":{\"enabled\":true,\"percent\":25}}",
            "rollgate.dev/request": "pause",
        });
        let watched: WatchedFlag = serde_json::from_value(raw).unwrap();
        let meta = watched.meta();
        assert_eq!(meta.managed_fields, None);
        let annotations = meta.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["rollgate.dev/request"]
        );
    }

    #[test]
    fn objects_without_metadata_are_rejected() {
        assert!(WatchedFlag::from_value(json!({"spec": {"percent": "lots"}})).is_err());
    }

    #[test]
    fn undecodable_flags_serialize_as_stored() {
        let good = object("checkout", json!({"enabled": true, "percent": 25.0}));
        let watched = WatchedFlag::from_value(good).unwrap();
        assert_eq!(watched.decoded().unwrap().spec.percent, Some(25.0));
        let bad = object("checkout", json!({"percent": "lots"}));
        let watched = WatchedFlag::from_value(bad.clone()).unwrap();
        assert_eq!(serde_json::to_value(&watched).unwrap(), bad);
    }
}
