//! The conventions table (otlp_router/model/conventions.py), compiled for the core's view: the
//! same sources, type rules and suppress rules, in the same order, with the lookups genai.py's
//! `_Engine` builds.  What the core does not read itself (composed sources, span-event sources
//! and the few readers of `IN_PYTHON`) is marked, so a span that needs one is left to Python.

use std::collections::HashMap as StdHashMap;
use std::collections::HashSet as StdHashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::value::{Map, Value};

/// FNV-1a: attribute keys are short, and SipHash's defence against chosen keys buys nothing for
/// a table's own keys (client keys are only looked up in these, never inserted: maps that keep
/// what clients send are `crate::ClientMap`s).
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

pub type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<Fnv>>;
pub type HashSet<K> = StdHashSet<K, BuildHasherDefault<Fnv>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Text,
    JsString,
    Operation,
    Count,
    PositiveCount,
    Usd,
    Content,
    ContentNonempty,
    Mapping,
    Params,
    Tags,
    Level,
    Time,
    Offset,
    Environment,
    UsageDetails,
    CostDetails,
    Flat,
    FlatParams,
    Paths,
    UsageOther,
    ToolList,
    OpenInferenceTools,
    LogfireInput,
    LogfireOutput,
    /// of the span events a source names
    EventMessages,
    EventChoices,
    EventAttributes,
    /// a reader the core does not have (a newer table's): Python reads the trace
    InPython,
}

impl Read {
    pub fn from_name(name: &str) -> Read {
        match name {
            "text" => Read::Text,
            "string" => Read::JsString,
            "operation" => Read::Operation,
            "count" => Read::Count,
            "positive_count" => Read::PositiveCount,
            "usd" => Read::Usd,
            "content" => Read::Content,
            "content_nonempty" => Read::ContentNonempty,
            "mapping" => Read::Mapping,
            "params" => Read::Params,
            "tags" => Read::Tags,
            "level" => Read::Level,
            "time" => Read::Time,
            "offset" => Read::Offset,
            "environment" => Read::Environment,
            "usage_details" => Read::UsageDetails,
            "cost_details" => Read::CostDetails,
            "flat" => Read::Flat,
            "flat_params" => Read::FlatParams,
            "paths" => Read::Paths,
            "usage_other" => Read::UsageOther,
            "tool_list" => Read::ToolList,
            "openinference_tools" => Read::OpenInferenceTools,
            "logfire_events_input" => Read::LogfireInput,
            "logfire_events_output" => Read::LogfireOutput,
            "event_messages" => Read::EventMessages,
            "event_choices" => Read::EventChoices,
            "event_attributes" => Read::EventAttributes,
            _ => Read::InPython,
        }
    }
}

/// The view's attributes a field fills one to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direct {
    Name,
    Model,
    Provider,
    Operation,
    Input,
    Output,
    TraceInput,
    TraceOutput,
    ModelParameters,
    UserId,
    SessionId,
    TraceName,
    Tags,
    Metadata,
    Environment,
}

/// Fields the view derives its attributes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    SystemInstructions,
    Tools,
    UsageOther,
    UsageDetails,
    CostDetails,
    CostTotal,
    CostInput,
    CostOutput,
    Level,
    StatusMessage,
    CompletionStartTime,
    TimeToFirstChunk,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Direct(Direct),
    /// a usage bucket, by Langfuse key
    Bucket(String),
    Special(Special),
}

pub fn role_of(field: &str) -> Option<Role> {
    use Direct::*;
    let direct = match field {
        "name" => Some(Name),
        "model" => Some(Model),
        "provider" => Some(Provider),
        "operation" => Some(Operation),
        "input" => Some(Input),
        "output" => Some(Output),
        "trace_input" => Some(TraceInput),
        "trace_output" => Some(TraceOutput),
        "model_parameters" => Some(ModelParameters),
        "user_id" => Some(UserId),
        "session_id" => Some(SessionId),
        "trace_name" => Some(TraceName),
        "tags" => Some(Tags),
        "metadata" => Some(Metadata),
        "environment" => Some(Environment),
        _ => None,
    };
    if let Some(d) = direct {
        return Some(Role::Direct(d));
    }
    if let Some(bucket) = field.strip_prefix("usage.") {
        if field != "usage.other" {
            return Some(Role::Bucket(bucket.to_string()));
        }
    }
    let special = match field {
        "system_instructions" => Special::SystemInstructions,
        "tools" => Special::Tools,
        "usage.other" => Special::UsageOther,
        "usage_details" => Special::UsageDetails,
        "cost_details" => Special::CostDetails,
        "cost.total" => Special::CostTotal,
        "cost.input" => Special::CostInput,
        "cost.output" => Special::CostOutput,
        "level" => Special::Level,
        "status_message" => Special::StatusMessage,
        "completion_start_time" => Special::CompletionStartTime,
        "time_to_first_chunk" => Special::TimeToFirstChunk,
        _ => return None,
    };
    Some(Role::Special(special))
}

pub struct Field {
    pub name: String,
    pub role: Role,
    /// all sources count, dicts merged (metadata, usage.other)
    pub merged: bool,
    /// sources of one priority merge (model_parameters)
    pub dict: bool,
}

pub struct Source {
    pub field: usize,
    pub priority: i64,
    pub read: Read,
    pub key: Option<String>,
    pub prefix: Option<String>,
    /// span events this source reads (by name), and the event attribute it takes
    pub events: Vec<String>,
    pub attribute: Option<String>,
    /// a mapping built from several keys: (member, options tried in order)
    pub compose: Vec<(String, Vec<Source>)>,
    pub require: Vec<String>,
    pub merge: Vec<String>,
    /// a reader the core lacks: a span that needs it is Python's
    pub in_python: bool,
    pub span_names: HashSet<String>,
    pub constant: Value,
    pub path: Vec<String>,
    pub pick: Option<String>,
    pub values: Option<Map>,
    pub unit: f64,
    pub exclude: HashSet<String>,
    pub known: bool,
    pub when: Option<(String, String)>,
    pub prepend: Option<(String, String)>,
    pub scopes: Option<Vec<String>>,
    pub system_instructions: bool,
    /// read by its reader alone (genai.py's `_Engine.fast` / `fast_family`)
    pub fast: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Exact,
    Lower,
    Upper,
}

pub struct TypeRule {
    pub key: Option<String>,
    pub values: Option<HashMap<String, String>>,
    pub prefixes: Vec<(String, String)>,
    pub name_prefixes: Vec<(String, String)>,
    pub span_names: Option<HashMap<String, String>>,
    pub any_of: Vec<String>,
    pub ty: Option<String>,
    pub requires_any: Vec<String>,
    pub case: Case,
    pub scopes: Option<Vec<String>>,
    pub resource: Option<Vec<(String, String)>>,
    pub version_at_most: Option<Vec<i64>>,
}

impl TypeRule {
    /// The keys one of which the rule needs present (genai.py's `_compiled_rules`).
    pub fn needs_any(&self) -> &[String] {
        if self.any_of.is_empty() {
            &self.requires_any
        } else {
            &self.any_of
        }
    }
}

pub struct Suppress {
    pub key: String,
    pub values: HashSet<String>,
    pub model: bool,
    pub usage: bool,
    pub cost: bool,
}

/// What an attribute key feeds (genai.py's `_Engine.learn`), and whether metadata shows it.
pub struct KeyInfo {
    /// sources naming it exactly, by rank
    pub exact: Vec<usize>,
    /// prefix families taking it: (rank, prefix length)
    pub families: Vec<(usize, usize)>,
    pub typed: bool,
    pub shown: bool,
}

const MAX_KEYS: usize = 20_000; // distinct keys remembered; past it, decided each time

/// Each table's own number, so a thread's cache of key decisions knows whose they are.
static TABLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The key decisions of the last table a thread asked, per thread: no lock, no atomic count per
/// attribute (a span asks for each of its attributes twice).
#[derive(Default)]
struct KeyCache {
    table: u64,
    keys: crate::ClientMap<String, std::rc::Rc<KeyInfo>>,
}

thread_local! {
    static KEY_CACHE: std::cell::RefCell<KeyCache> = std::cell::RefCell::new(KeyCache::default());
}

pub struct Table {
    pub fields: Vec<Field>,
    pub sources: Vec<Source>,
    pub type_rules: Vec<TypeRule>,
    pub type_keys: HashSet<String>,
    pub suppress: Vec<Suppress>,
    pub estimate_cost: bool,
    pub content_keys: HashSet<String>,
    pub content_prefixes: Vec<String>,
    pub not_content: HashSet<String>,
    /// the keys and prefixes the table's sources and type rules read (shown in no metadata)
    pub mapped_keys: HashSet<String>,
    pub mapped_prefixes: Vec<String>,
    // lookups
    pub exact: HashMap<String, Vec<usize>>,
    /// prefix families, longest prefix first
    pub prefix_sources: Vec<usize>,
    /// event name → the sources reading such events
    pub events: HashMap<String, Vec<usize>>,
    pub span_name_sources: Vec<usize>,
    pub name_rule_scopes: HashSet<String>,
    id: u64,
}

impl Table {
    /// Builds the lookups over sources given in table order (their rank is their index).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fields: Vec<Field>,
        sources: Vec<Source>,
        compose_keys: Vec<(usize, Vec<String>)>,
        type_rules: Vec<TypeRule>,
        type_keys: HashSet<String>,
        suppress: Vec<Suppress>,
        estimate_cost: bool,
        content: (HashSet<String>, Vec<String>, HashSet<String>),
        mapped: (HashSet<String>, Vec<String>),
    ) -> Table {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::default();
        let mut prefix_sources = Vec::new();
        let mut span_name_sources = Vec::new();
        let mut events: HashMap<String, Vec<usize>> = HashMap::default();
        let composed: HashMap<usize, Vec<String>> = compose_keys.into_iter().collect();
        for (rank, s) in sources.iter().enumerate() {
            if let Some(key) = &s.key {
                exact.entry(key.clone()).or_default().push(rank);
            } else if s.prefix.is_some() {
                prefix_sources.push(rank);
            } else if let Some(keys) = composed.get(&rank) {
                let mut seen = StdHashSet::new();
                for k in keys {
                    if seen.insert(k) {
                        exact.entry(k.clone()).or_default().push(rank);
                    }
                }
            } else if !s.events.is_empty() {
                for name in &s.events {
                    events.entry(name.clone()).or_default().push(rank);
                }
            } else if !s.span_names.is_empty() {
                span_name_sources.push(rank);
            }
        }
        // stable, as Python's sort: equal lengths keep their rank order
        prefix_sources
            .sort_by_key(|&r| std::cmp::Reverse(sources[r].prefix.as_ref().map_or(0, |p| p.len())));
        let name_rule_scopes = type_rules
            .iter()
            .filter(|r| r.span_names.is_some())
            .flat_map(|r| r.scopes.iter().flatten().cloned())
            .collect();
        Table {
            fields,
            sources,
            type_rules,
            type_keys,
            suppress,
            estimate_cost,
            content_keys: content.0,
            content_prefixes: content.1,
            not_content: content.2,
            mapped_keys: mapped.0,
            mapped_prefixes: mapped.1,
            exact,
            prefix_sources,
            events,
            span_name_sources,
            name_rule_scopes,
            id: TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// What `key` feeds, remembered (per thread) for the few hundred distinct keys a deployment
    /// sends.
    pub fn key_info(&self, key: &str) -> std::rc::Rc<KeyInfo> {
        KEY_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.table != self.id {
                cache.table = self.id;
                cache.keys.clear();
            }
            if let Some(info) = cache.keys.get(key) {
                return info.clone();
            }
            let info = std::rc::Rc::new(self.decide(key));
            if cache.keys.len() < MAX_KEYS {
                cache.keys.insert(key.to_string(), info.clone());
            }
            info
        })
    }

    fn decide(&self, key: &str) -> KeyInfo {
        let exact = self.exact.get(key).cloned().unwrap_or_default();
        let families = self
            .prefix_sources
            .iter()
            .filter_map(|&rank| {
                let source = &self.sources[rank];
                let prefix = source.prefix.as_deref().unwrap_or("\0");
                (key.starts_with(prefix) && (source.known || exact.is_empty()) && key != prefix)
                    .then_some((rank, prefix.len()))
            })
            .collect();
        KeyInfo {
            exact,
            families,
            typed: self.type_keys.contains(key),
            shown: self.shown(key),
        }
    }

    /// Whether metadata.attributes shows the span attribute `key`: not content, and not read
    /// by a field (trace_json.py's `_decide_shown`).
    pub fn shown(&self, key: &str) -> bool {
        let content = self.content_keys.contains(key)
            || (self
                .content_prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str()))
                && !self.not_content.contains(key));
        !(content
            || self.mapped_keys.contains(key)
            || self
                .mapped_prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str())))
    }
}

/// A source's or rule's scope list admits `scope_name` (`*` ends a prefix).
pub fn scope_ok(scopes: &Option<Vec<String>>, scope_name: &str) -> bool {
    match scopes {
        None => true,
        Some(list) => list.iter().any(|s| {
            s == scope_name || (s.ends_with('*') && scope_name.starts_with(&s[..s.len() - 1]))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{HashSet, Table};

    fn table_typing(key: &str) -> Table {
        let typed: HashSet<String> = [key.to_string()].into_iter().collect();
        Table::new(
            vec![],
            vec![],
            vec![],
            vec![],
            typed,
            vec![],
            false,
            (HashSet::default(), vec![], HashSet::default()),
            (HashSet::default(), vec![]),
        )
    }

    #[test]
    fn a_threads_key_decisions_are_each_tables_own() {
        // Two tables asked in turn on one thread: the cache never answers for the other one.
        let (a, b) = (table_typing("gen_ai.system"), table_typing("llm.system"));
        for _ in 0..3 {
            assert!(a.key_info("gen_ai.system").typed && !a.key_info("llm.system").typed);
            assert!(b.key_info("llm.system").typed && !b.key_info("gen_ai.system").typed);
        }
        // Past the cache's size, keys are still decided (each time).
        for n in 0..super::MAX_KEYS + 10 {
            assert!(!a.key_info(&format!("k{n}")).typed);
        }
        assert!(a.key_info("gen_ai.system").typed);
    }
}
