//! The plan compiler: an Avro schema parsed once by apache-avro, then flattened into our own
//! compact node table (`node`: nodes in a `Vec`, children by index, named types resolved, field
//! names, enum symbols and union branch choices precomputed, field defaults pre-encoded with `json`).
//!
//! Must not encode or decode records itself (that is `json`, `ser`, `de`, `resolve`), and must not
//! keep apache-avro `Value`s or `Schema`s around after compiling.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{
    EnumSchema, InnerDecimalSchema, Name, RecordSchema, UnionSchema, UuidSchema,
};

use super::CodecError;
use super::node::{CAT_COUNT, Cat, Field, NO_BRANCH, Node, NodeId, Plan, TypedMap};

impl Plan {
    /// Parse an Avro schema (JSON text) with apache-avro and compile it.
    pub fn compile_str(schema: &str) -> Result<Plan, CodecError> {
        let parsed =
            Schema::parse_str(schema).map_err(|e| CodecError::InvalidSchema(e.to_string()))?;
        Plan::compile(&parsed)
    }

    /// Compile a parsed apache-avro schema.
    pub fn compile(schema: &Schema) -> Result<Plan, CodecError> {
        let mut c = Compiler {
            nodes: Vec::new(),
            named: HashMap::new(),
            defaults: Vec::new(),
        };
        c.node(schema, None)?;
        let mut plan = Plan {
            nodes: c.nodes,
            min_size: Vec::new(),
        };
        plan.min_size = compute_min_sizes(&plan.nodes);
        // Defaults are encoded once the whole plan exists (they may refer to later named types).
        for (rec, fi, json, branch_node) in c.defaults {
            let mut out = Vec::new();
            // A union's default is its first branch's value, written with branch index 0.
            let field_node = match plan.nodes.get(rec as usize) {
                Some(Node::Record { fields, .. }) => fields.get(fi).map(|f| f.node),
                _ => None,
            };
            if field_node != Some(branch_node) {
                out.push(0);
            }
            super::json::encode_node(&plan, branch_node, &json, &mut out, 0).map_err(|e| {
                CodecError::InvalidSchema(format!(
                    "bad default for field {}: {e}",
                    field_name(&plan, rec, fi)
                ))
            })?;
            if let Some(Node::Record { fields, .. }) = plan.nodes.get_mut(rec as usize)
                && let Some(f) = fields.get_mut(fi)
            {
                f.default = Some(out.into_boxed_slice());
            }
        }
        Ok(plan)
    }
}

fn field_name(plan: &Plan, rec: NodeId, fi: usize) -> String {
    match plan.nodes.get(rec as usize) {
        Some(Node::Record { fields, .. }) => fields
            .get(fi)
            .map(|f| f.name.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

struct Compiler {
    nodes: Vec<Node>,
    named: HashMap<String, NodeId>,
    /// (record node, field index, default JSON, node to encode it with).
    defaults: Vec<(NodeId, usize, serde_json::Value, NodeId)>,
}

fn aliases(a: &apache_avro::schema::Aliases) -> Box<[Box<str>]> {
    a.as_ref()
        .map(|v| {
            v.iter()
                .map(|x| Box::from(x.name()))
                .collect::<Vec<_>>()
                .into_boxed_slice()
        })
        .unwrap_or_default()
}

impl Compiler {
    fn push(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as NodeId
    }

    fn register(&mut self, fullname: String, id: NodeId) {
        // A short name also resolves, for references written without the namespace.
        if let Some(short) = fullname.rsplit('.').next()
            && short != fullname
        {
            self.named.entry(short.to_string()).or_insert(id);
        }
        self.named.insert(fullname, id);
    }

    fn node(&mut self, s: &Schema, _ns: Option<&str>) -> Result<NodeId, CodecError> {
        let id = match s {
            Schema::Null => self.push(Node::Null),
            Schema::Boolean => self.push(Node::Boolean),
            Schema::Int | Schema::Date | Schema::TimeMillis => self.push(Node::Int),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.push(Node::Long),
            Schema::Float => self.push(Node::Float),
            Schema::Double => self.push(Node::Double),
            Schema::Bytes | Schema::BigDecimal => self.push(Node::Bytes),
            Schema::String => self.push(Node::String),
            Schema::Uuid(u) => match u {
                UuidSchema::String => self.push(Node::String),
                UuidSchema::Bytes => self.push(Node::Bytes),
                UuidSchema::Fixed(f) => self.fixed(&f.name, f.size),
            },
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => self.push(Node::Bytes),
                InnerDecimalSchema::Fixed(f) => self.fixed(&f.name, f.size),
            },
            Schema::Fixed(f) | Schema::Duration(f) => self.fixed(&f.name, f.size),
            Schema::Enum(e) => self.enum_node(e)?,
            Schema::Array(a) => {
                let id = self.push(Node::Pending);
                let items = self.node(&a.items, None)?;
                self.nodes[id as usize] = Node::Array { items };
                id
            }
            Schema::Map(m) => {
                let id = self.push(Node::Pending);
                let values = self.node(&m.types, None)?;
                self.nodes[id as usize] = Node::Map { values };
                id
            }
            Schema::Union(u) => self.union_node(u)?,
            Schema::Record(r) => self.record_node(r)?,
            Schema::Ref { name } => return self.named_ref(name),
        };
        Ok(id)
    }

    fn enum_node(&mut self, e: &EnumSchema) -> Result<NodeId, CodecError> {
        let fullname = e.name.fullname(None);
        let default = match &e.default {
            Some(d) => Some(e.symbols.iter().position(|s| s == d).ok_or_else(|| {
                CodecError::InvalidSchema(format!("enum {fullname}: default {d} is not a symbol"))
            })? as u32),
            None => None,
        };
        let id = self.push(Node::Enum {
            name: Box::from(fullname.as_str()),
            aliases: aliases(&e.aliases),
            symbols: e.symbols.iter().map(|s| Box::from(s.as_str())).collect(),
            default,
            typed: TypedMap::default(),
        });
        self.register(fullname, id);
        Ok(id)
    }

    fn union_node(&mut self, u: &UnionSchema) -> Result<NodeId, CodecError> {
        let id = self.push(Node::Pending);
        let mut branches = Vec::with_capacity(u.variants().len());
        for v in u.variants() {
            branches.push(self.node(v, None)?);
        }
        let pick = self.pick_table(&branches);
        self.nodes[id as usize] = Node::Union {
            branches: branches.into_boxed_slice(),
            pick,
        };
        Ok(id)
    }

    fn record_node(&mut self, r: &RecordSchema) -> Result<NodeId, CodecError> {
        let fullname = r.name.fullname(None);
        let id = self.push(Node::Pending);
        self.register(fullname.clone(), id);
        let mut fields = Vec::with_capacity(r.fields.len());
        for (i, f) in r.fields.iter().enumerate() {
            let node = self.node(&f.schema, None)?;
            if let Some(d) = &f.default {
                // A union's default belongs to its first branch.
                let target = match &self.nodes[node as usize] {
                    Node::Union { branches, .. } => branches.first().copied().unwrap_or(node),
                    _ => node,
                };
                self.defaults.push((id, i, d.clone(), target));
            }
            fields.push(Field {
                name: Box::from(f.name.as_str()),
                aliases: f.aliases.iter().map(|a| Box::from(a.as_str())).collect(),
                node,
                default: None,
            });
        }
        self.nodes[id as usize] = Node::Record {
            name: Box::from(fullname.as_str()),
            aliases: aliases(&r.aliases),
            fields: fields.into_boxed_slice(),
            typed: TypedMap::default(),
        };
        Ok(id)
    }

    /// A reference to a named type compiled before (by full name, else by short name).
    fn named_ref(&self, name: &Name) -> Result<NodeId, CodecError> {
        let full = name.fullname(None);
        match self
            .named
            .get(&full)
            .or_else(|| self.named.get(name.name()))
        {
            Some(&id) => Ok(id),
            None => Err(CodecError::InvalidSchema(format!(
                "unknown named type {full}"
            ))),
        }
    }

    fn fixed(&mut self, name: &apache_avro::schema::Name, size: usize) -> NodeId {
        let fullname = name.fullname(None);
        let id = self.push(Node::Fixed {
            name: Box::from(fullname.as_str()),
            size,
        });
        self.register(fullname, id);
        id
    }

    /// For each value category, the first branch that accepts it.
    fn pick_table(&self, branches: &[NodeId]) -> [u8; CAT_COUNT] {
        let mut pick = [NO_BRANCH; CAT_COUNT];
        let order = [
            Cat::Null,
            Cat::Bool,
            Cat::Int,
            Cat::Long,
            Cat::Float,
            Cat::Str,
            Cat::Bytes,
            Cat::Object,
            Cat::Array,
        ];
        for cat in order {
            for (i, &b) in branches.iter().enumerate() {
                let fits = matches!(
                    (&self.nodes[b as usize], cat),
                    (Node::Null, Cat::Null)
                        | (Node::Boolean, Cat::Bool)
                        | (Node::Int, Cat::Int)
                        | (Node::Long, Cat::Int | Cat::Long)
                        | (
                            Node::Float | Node::Double,
                            Cat::Int | Cat::Long | Cat::Float
                        )
                        | (Node::String | Node::Enum { .. }, Cat::Str)
                        | (Node::Bytes | Node::Fixed { .. }, Cat::Str | Cat::Bytes)
                        | (Node::Record { .. } | Node::Map { .. }, Cat::Object)
                        | (Node::Array { .. }, Cat::Array)
                );
                if fits {
                    pick[cat as usize] = i as u8;
                    break;
                }
            }
        }
        pick
    }
}

fn compute_min_sizes(nodes: &[Node]) -> Vec<usize> {
    // Fixed-point iteration from 0 upward; recursive types converge because every cycle
    // passes through a union or an array/map, whose minimum does not depend on the cycle.
    let mut m = vec![0usize; nodes.len()];
    loop {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            let v = match n {
                Node::Null | Node::Pending => 0,
                Node::Boolean | Node::Int | Node::Long | Node::Bytes | Node::String => 1,
                Node::Float => 4,
                Node::Double => 8,
                Node::Fixed { size, .. } => *size,
                Node::Enum { .. } => 1,
                Node::Array { .. } | Node::Map { .. } => 1,
                Node::Union { branches, .. } => {
                    1 + branches.iter().map(|&b| m[b as usize]).min().unwrap_or(0)
                }
                Node::Record { fields, .. } => fields
                    .iter()
                    .map(|f| m[f.node as usize])
                    .fold(0usize, |a, b| a.saturating_add(b))
                    .min(1 << 20),
            };
            if v != m[i] {
                m[i] = v;
                changed = true;
            }
        }
        if !changed {
            return m;
        }
    }
}
