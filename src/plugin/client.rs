//! The Kubernetes side of the plugin: the kubeconfig and context, reading flags and their
//! events, and writing the request annotation. Every API error becomes a plain sentence.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, TypeMeta};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde_json::Value;

use super::args::GlobalArgs;
use super::error::PluginError;
use rollgate_core::crd::{FeatureFlag, REQUEST_ANNOTATION};

/// One flag: the typed view the tables are rendered from, and the object exactly as the
/// API server sent it, for `-o json|yaml`.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub flag: FeatureFlag,
    pub raw: Value,
}

/// A flag whose object does not parse as this build's `FeatureFlag`.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub namespace: String,
    pub name: String,
    pub error: String,
    pub raw: Value,
}

/// The flags of a list; the unreadable ones are reported, not fatal.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    pub flags: Vec<Fetched>,
    pub unreadable: Vec<Unreadable>,
}

impl Listed {
    /// Every object as the API server sent it, for `-o json|yaml`.
    pub fn raw(&self) -> Vec<&Value> {
        self.flags
            .iter()
            .map(|f| &f.raw)
            .chain(self.unreadable.iter().map(|u| &u.raw))
            .collect()
    }

    /// One warning line per unreadable flag, on stderr.
    pub fn warn_unreadable(&self) {
        for unreadable in &self.unreadable {
            eprintln!(
                "warning: flag '{}' in namespace '{}' cannot be read by this plugin: {}",
                unreadable.name, unreadable.namespace, unreadable.error
            );
        }
    }
}

impl Fetched {
    fn parse(mut object: DynamicObject) -> Result<Self, Unreadable> {
        if object.types.is_none() {
            object.types = Some(TypeMeta::resource::<FeatureFlag>());
        }
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let raw = serde_json::to_value(&object).map_err(|e| Unreadable {
            namespace: namespace.clone(),
            name: name.clone(),
            error: e.to_string(),
            raw: Value::Null,
        })?;
        match serde_json::from_value::<FeatureFlag>(raw.clone()) {
            Ok(flag) => Ok(Self { flag, raw }),
            Err(error) => Err(Unreadable {
                namespace,
                name,
                error: error.to_string(),
                raw,
            }),
        }
    }
}

/// Which namespaces a command looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

/// A connection to the cluster of the chosen context.
pub struct Cluster {
    client: Client,
    default_namespace: String,
}

impl Cluster {
    /// Loads `--kubeconfig` (else `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster
    /// service account) with `--context` (else the current context).
    pub async fn connect(global: &GlobalArgs) -> Result<Self, PluginError> {
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &global.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| match e {
                    KubeconfigError::ReadConfig(io, _) => PluginError::Kubeconfig(format!(
                        "cannot read the kubeconfig {}: {io}",
                        path.display()
                    )),
                    other => PluginError::Kubeconfig(format!(
                        "cannot load the kubeconfig {}: {}",
                        path.display(),
                        error_chain(&other)
                    )),
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| kubeconfig_error(e, global))?
            }
            None => match Config::from_kubeconfig(&options).await {
                Ok(config) => config,
                // Inside a pod with no kubeconfig, as kubectl does.
                Err(error) if global.context.is_none() => {
                    Config::incluster().map_err(|_| kubeconfig_error(error, global))?
                }
                Err(error) => return Err(kubeconfig_error(error, global)),
            },
        };
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| {
            PluginError::Kubeconfig(format!("cannot set up the API client: {}", error_chain(&e)))
        })?;
        Ok(Self {
            client,
            default_namespace,
        })
    }

    /// `-n`, else the namespace of the kubeconfig context (`default` when it has none).
    pub fn namespace(&self, global: &GlobalArgs) -> String {
        global
            .namespace
            .clone()
            .unwrap_or_else(|| self.default_namespace.clone())
    }

    /// `-A` for every namespace, else [`Self::namespace`].
    pub fn scope(&self, global: &GlobalArgs) -> Scope {
        if global.all_namespaces {
            Scope::All
        } else {
            Scope::Namespace(self.namespace(global))
        }
    }

    /// FeatureFlags as they come from the API server, so that `-o json|yaml` prints them
    /// exactly (numbers, fields this build does not know) and one unreadable object does
    /// not hide the others.
    fn flags(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = ApiResource::erase::<FeatureFlag>(&());
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    pub async fn get_flag(&self, namespace: &str, name: &str) -> Result<Fetched, PluginError> {
        let object = self
            .flags(Some(namespace))
            .get(name)
            .await
            .map_err(|e| api_error(e, "get", Target::Flag { namespace, name }))?;
        Fetched::parse(object).map_err(|unreadable| PluginError::Unreadable {
            name: unreadable.name,
            namespace: unreadable.namespace,
            message: unreadable.error,
        })
    }

    /// Flags sorted by namespace, then name.
    pub async fn list_flags(&self, scope: &Scope) -> Result<Listed, PluginError> {
        let (api, target) = match scope {
            Scope::All => (self.flags(None), Target::AllNamespaces),
            Scope::Namespace(namespace) => {
                (self.flags(Some(namespace)), Target::Namespace(namespace))
            }
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(e, "list", target))?;
        let mut listed = Listed::default();
        for object in list.items {
            match Fetched::parse(object) {
                Ok(fetched) => listed.flags.push(fetched),
                Err(unreadable) => listed.unreadable.push(unreadable),
            }
        }
        listed.flags.sort_by(|a, b| {
            let key = |f: &Fetched| {
                (
                    f.flag.metadata.namespace.clone(),
                    f.flag.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(listed)
    }

    /// The events about one flag, oldest first. An error is returned as text for the
    /// status view to show instead: events are a convenience, not the truth.
    pub async fn events_for(&self, flag: &FeatureFlag) -> Result<Vec<Event>, String> {
        let namespace = flag.metadata.namespace.as_deref().unwrap_or("default");
        let selector = match &flag.metadata.uid {
            Some(uid) => format!("involvedObject.uid={uid}"),
            None => format!(
                "involvedObject.kind=FeatureFlag,involvedObject.name={}",
                flag.metadata.name.as_deref().unwrap_or_default()
            ),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&ListParams::default().fields(&selector))
            .await
            .map_err(|e| api_error(e, "list", Target::Events(namespace)).to_string())?;
        let mut events = list.items;
        events.sort_by_key(super::render::event_time);
        Ok(events)
    }

    /// Sets `metadata.annotations["rollgate.dev/request"]` with a JSON merge patch.
    pub async fn write_request(
        &self,
        namespace: &str,
        name: &str,
        value: &str,
    ) -> Result<(), PluginError> {
        let patch = serde_json::json!({
            "metadata": {"annotations": {REQUEST_ANNOTATION: value}}
        });
        self.flags(Some(namespace))
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| api_error(e, "patch", Target::Flag { namespace, name }))
    }
}

/// What an API call was about, for the error sentence.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Flag { namespace: &'a str, name: &'a str },
    Namespace(&'a str),
    AllNamespaces,
    Events(&'a str),
}

impl Target<'_> {
    fn describe(self) -> String {
        match self {
            Self::Flag { namespace, name } => {
                format!("flag '{name}' in namespace '{namespace}'")
            }
            Self::Namespace(namespace) => format!("flags in namespace '{namespace}'"),
            Self::AllNamespaces => "flags in all namespaces".to_string(),
            Self::Events(namespace) => format!("events in namespace '{namespace}'"),
        }
    }
}

fn api_error(error: kube::Error, verb: &'static str, target: Target<'_>) -> PluginError {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            match status.code {
                404 if message.contains("could not find the requested resource") => {
                    PluginError::CrdMissing
                }
                404 => match target {
                    Target::Flag { namespace, name } => PluginError::NotFound {
                        name: name.to_string(),
                        namespace: namespace.to_string(),
                    },
                    _ => PluginError::CrdMissing,
                },
                401 => PluginError::Kubeconfig(format!(
                    "the API server did not accept the credentials of this context: {message}"
                )),
                403 => PluginError::Forbidden {
                    verb,
                    what: target.describe(),
                    message,
                },
                _ => PluginError::Api {
                    verb,
                    what: target.describe(),
                    message,
                },
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            PluginError::Unreachable(error_chain(&error))
        }
        other => PluginError::Api {
            verb,
            what: target.describe(),
            message: error_chain(&other),
        },
    }
}

/// The error and its causes on one line, the last cause being the most specific.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn kubeconfig_error(error: KubeconfigError, global: &GlobalArgs) -> PluginError {
    match error {
        KubeconfigError::LoadContext(name) => PluginError::ContextNotFound(name),
        KubeconfigError::CurrentContextNotSet if global.context.is_none() => {
            PluginError::Kubeconfig(
                "the kubeconfig has no current context; pass --context NAME".to_string(),
            )
        }
        KubeconfigError::ReadConfig(io, path) => PluginError::Kubeconfig(format!(
            "cannot read the kubeconfig {}: {io}",
            path.display()
        )),
        other => PluginError::Kubeconfig(format!(
            "cannot load the kubeconfig: {}",
            error_chain(&other)
        )),
    }
}
