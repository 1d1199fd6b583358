//! Avro schema resolution: read data written with writer schema W as if it had reader schema R.
//!
//! A (W, R) pair is compiled once into a resolving plan: record fields matched by name and aliases,
//! writer-only fields skipped, reader-only fields filled from their (pre-decoded) default, numeric
//! promotions (int→long/float/double, long→float/double, float→double), string⇄bytes, enum
//! symbols by name (reader default for unknown ones), unions on either side.
//! Must not touch the wire frame or the registry; output is natural JSON.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::json::{MAX_DEPTH, Walk, bytes_json, decode_node, float_json, skip_node};
use super::node::{Node, NodeId, Plan};
use super::{CodecError, Fail};

type RId = u32;

#[derive(Debug, Clone, Copy)]
enum Conv {
    IntToFloat,
    IntToDouble,
    LongToFloat,
    LongToDouble,
    StringToBytes,
    BytesToString,
}

#[derive(Debug)]
enum Step {
    Read { name: Box<str>, r: RId },
    Skip(NodeId),
}

#[derive(Debug)]
enum RNode {
    /// Same type on both sides (or a promotion whose natural JSON is unchanged: int→long, float→double).
    Direct(NodeId),
    Convert(Conv),
    /// Per writer symbol: the reader's symbol, or `Err(writer symbol)` when the reader lacks it.
    Enum(Box<[Result<Box<str>, Box<str>>]>),
    Array {
        w_items: NodeId,
        items: RId,
    },
    Map {
        w_values: NodeId,
        values: RId,
    },
    Record {
        steps: Box<[Step]>,
        defaults: Box<[(Box<str>, Value)]>,
    },
    /// Writer union: per writer branch, its resolution or why it has none.
    WriterUnion(Box<[Result<RId, Box<str>>]>),
    Pending,
}

/// A compiled (writer, reader) pair.
#[derive(Debug)]
pub struct Resolver {
    writer: Arc<Plan>,
    nodes: Vec<RNode>,
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn names_match(w: &str, r: &str, r_aliases: &[Box<str>]) -> bool {
    w == r || short(w) == short(r) || r_aliases.iter().any(|a| &**a == w || short(a) == short(w))
}

struct Builder<'p> {
    w: &'p Plan,
    r: &'p Plan,
    nodes: Vec<RNode>,
    memo: HashMap<(NodeId, NodeId), RId>,
}

impl Builder<'_> {
    fn push(&mut self, n: RNode) -> RId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as RId
    }

    /// Whether writer node `w` matches reader node `r` without unions; `exact` leaves out promotions.
    fn matches(&self, w: NodeId, r: NodeId, exact: bool) -> bool {
        match (self.w.node(w), self.r.node(r)) {
            (Node::Null, Node::Null)
            | (Node::Boolean, Node::Boolean)
            | (Node::Int, Node::Int)
            | (Node::Long, Node::Long)
            | (Node::Float, Node::Float)
            | (Node::Double, Node::Double)
            | (Node::Bytes, Node::Bytes)
            | (Node::String, Node::String)
            | (Node::Array { .. }, Node::Array { .. })
            | (Node::Map { .. }, Node::Map { .. }) => true,
            (Node::Fixed { name: a, size: x }, Node::Fixed { name: b, size: y }) => {
                x == y && names_match(a, b, &[])
            }
            (
                Node::Enum { name: a, .. },
                Node::Enum {
                    name: b, aliases, ..
                },
            ) => names_match(a, b, aliases),
            (
                Node::Record { name: a, .. },
                Node::Record {
                    name: b, aliases, ..
                },
            ) => names_match(a, b, aliases),
            (Node::Int, Node::Long | Node::Float | Node::Double)
            | (Node::Long, Node::Float | Node::Double)
            | (Node::Float, Node::Double)
            | (Node::String, Node::Bytes)
            | (Node::Bytes, Node::String) => !exact,
            _ => false,
        }
    }

    fn resolve(&mut self, w: NodeId, r: NodeId) -> Result<RId, Fail> {
        if let Node::Union { branches, .. } = self.w.node(w) {
            let branches = branches.clone();
            let id = self.push(RNode::Pending);
            let mut out = Vec::with_capacity(branches.len());
            for &b in branches.iter() {
                out.push(
                    self.resolve(b, r)
                        .map_err(|e| Box::from(e.to_string().as_str())),
                );
            }
            self.nodes[id as usize] = RNode::WriterUnion(out.into_boxed_slice());
            return Ok(id);
        }
        if let Node::Union { branches, .. } = self.r.node(r) {
            let pick = branches
                .iter()
                .find(|&&b| self.matches(w, b, true))
                .or_else(|| branches.iter().find(|&&b| self.matches(w, b, false)))
                .copied();
            return match pick {
                Some(b) => self.resolve(w, b),
                None => Err(Box::new(CodecError::IncompatibleSchema(format!(
                    "no branch of the reader's union matches writer type {}",
                    self.w.node(w).type_name()
                )))),
            };
        }
        if !self.matches(w, r, false) {
            return Err(Box::new(CodecError::IncompatibleSchema(format!(
                "writer type {} cannot be read as {}",
                self.w.node(w).type_name(),
                self.r.node(r).type_name()
            ))));
        }
        let node = match (self.w.node(w), self.r.node(r)) {
            (Node::Int, Node::Float) => RNode::Convert(Conv::IntToFloat),
            (Node::Int, Node::Double) => RNode::Convert(Conv::IntToDouble),
            (Node::Long, Node::Float) => RNode::Convert(Conv::LongToFloat),
            (Node::Long, Node::Double) => RNode::Convert(Conv::LongToDouble),
            (Node::String, Node::Bytes) => RNode::Convert(Conv::StringToBytes),
            (Node::Bytes, Node::String) => RNode::Convert(Conv::BytesToString),
            (
                Node::Enum { symbols: ws, .. },
                Node::Enum {
                    symbols: rs,
                    default,
                    ..
                },
            ) => {
                let map = ws
                    .iter()
                    .map(|s| match rs.iter().find(|x| x[..] == s[..]) {
                        Some(x) => Ok(x.clone()),
                        None => match default.and_then(|d| rs.get(d as usize)) {
                            Some(d) => Ok(d.clone()),
                            None => Err(s.clone()),
                        },
                    })
                    .collect();
                RNode::Enum(map)
            }
            (Node::Array { items: wi }, Node::Array { items: ri }) => {
                let (wi, ri) = (*wi, *ri);
                let id = self.push(RNode::Pending);
                let items = self.resolve(wi, ri)?;
                self.nodes[id as usize] = RNode::Array { w_items: wi, items };
                return Ok(id);
            }
            (Node::Map { values: wv }, Node::Map { values: rv }) => {
                let (wv, rv) = (*wv, *rv);
                let id = self.push(RNode::Pending);
                let values = self.resolve(wv, rv)?;
                self.nodes[id as usize] = RNode::Map {
                    w_values: wv,
                    values,
                };
                return Ok(id);
            }
            (Node::Record { .. }, Node::Record { .. }) => return self.record(w, r),
            _ => RNode::Direct(w),
        };
        Ok(self.push(node))
    }

    fn record(&mut self, w: NodeId, r: NodeId) -> Result<RId, Fail> {
        if let Some(&id) = self.memo.get(&(w, r)) {
            return Ok(id);
        }
        let id = self.push(RNode::Pending);
        self.memo.insert((w, r), id);
        let (
            Node::Record { fields: wf, .. },
            Node::Record {
                name: rname,
                fields: rf,
                ..
            },
        ) = (self.w.node(w), self.r.node(r))
        else {
            return Err(Box::new(CodecError::IncompatibleSchema(
                "record expected".into(),
            )));
        };
        let mut used = vec![false; rf.len()];
        let mut steps = Vec::with_capacity(wf.len());
        for f in wf.iter() {
            let hit = rf
                .iter()
                .position(|x| x.name == f.name)
                .or_else(|| rf.iter().position(|x| x.aliases.contains(&f.name)));
            match hit {
                Some(i) if !used[i] => {
                    used[i] = true;
                    let rnode = self.resolve(f.node, rf[i].node).map_err(|e| match *e {
                        CodecError::IncompatibleSchema(m) => Box::new(
                            CodecError::IncompatibleSchema(format!("field {}: {m}", f.name)),
                        ),
                        e => Box::new(e),
                    })?;
                    steps.push(Step::Read {
                        name: rf[i].name.clone(),
                        r: rnode,
                    });
                }
                _ => steps.push(Step::Skip(f.node)),
            }
        }
        let mut defaults = Vec::new();
        for (i, f) in rf.iter().enumerate() {
            if used[i] {
                continue;
            }
            let Some(bytes) = &f.default else {
                return Err(Box::new(CodecError::IncompatibleSchema(format!(
                    "reader field {rname}.{} is not in the writer schema and has no default",
                    f.name
                ))));
            };
            let mut walk = Walk::new(bytes);
            let v = decode_node(self.r, f.node, &mut walk, 0)?;
            defaults.push((f.name.clone(), v));
        }
        self.nodes[id as usize] = RNode::Record {
            steps: steps.into_boxed_slice(),
            defaults: defaults.into_boxed_slice(),
        };
        Ok(id)
    }
}

impl Resolver {
    /// Compile the resolution from `writer` to `reader`; fails if the reader cannot read the writer.
    pub fn new(writer: Arc<Plan>, reader: Arc<Plan>) -> Result<Resolver, CodecError> {
        let mut b = Builder {
            w: &writer,
            r: &reader,
            nodes: Vec::new(),
            memo: HashMap::new(),
        };
        b.resolve(Plan::ROOT, Plan::ROOT).map_err(|e| *e)?;
        let nodes = b.nodes;
        Ok(Resolver { writer, nodes })
    }

    /// Decode a whole Avro body written with the writer schema into the reader's natural JSON.
    pub fn decode_json(&self, body: &[u8]) -> Result<Value, CodecError> {
        let mut w = Walk::new(body);
        let v = self.node(0, &mut w, 0).map_err(|e| *e)?;
        w.r.finish().map_err(|e| *e)?;
        Ok(v)
    }

    fn node(&self, id: RId, w: &mut Walk<'_>, depth: usize) -> Result<Value, Fail> {
        if depth > MAX_DEPTH {
            return Err(Box::new(CodecError::NestingTooDeep));
        }
        let Some(n) = self.nodes.get(id as usize) else {
            return Err(Box::new(CodecError::InvalidSchema(
                "incomplete resolving plan".into(),
            )));
        };
        let plan = &*self.writer;
        Ok(match n {
            RNode::Direct(wn) => decode_node(plan, *wn, w, depth + 1)?,
            RNode::Convert(c) => match c {
                Conv::IntToFloat => float_json(w.r.int()? as f32 as f64),
                Conv::IntToDouble => float_json(w.r.int()? as f64),
                Conv::LongToFloat => float_json(w.r.long()? as f32 as f64),
                Conv::LongToDouble => float_json(w.r.long()? as f64),
                Conv::StringToBytes => bytes_json(w.r.str()?.as_bytes()),
                Conv::BytesToString => {
                    let at = w.r.pos();
                    let b = w.r.bytes()?;
                    match std::str::from_utf8(b) {
                        Ok(s) => Value::String(s.to_owned()),
                        Err(_) => return Err(Box::new(CodecError::InvalidUtf8 { offset: at })),
                    }
                }
            },
            RNode::Enum(map) => {
                let i = w.r.enum_index(map.len())?;
                match &map[i] {
                    Ok(s) => Value::String(s.to_string()),
                    Err(s) => {
                        return Err(Box::new(CodecError::UnknownEnumSymbol {
                            path: String::new(),
                            symbol: s.to_string(),
                        }));
                    }
                }
            }
            RNode::Array { w_items, items } => {
                Value::Array(w.read_items(plan.min_size[*w_items as usize], |w, i| {
                    self.node(*items, w, depth + 1).map_err(|e| e.in_index(i))
                })?)
            }
            RNode::Map { w_values, values } => {
                let pairs = w.read_items(1 + plan.min_size[*w_values as usize], |w, _| {
                    let k = w.r.str()?.to_owned();
                    let v = self
                        .node(*values, w, depth + 1)
                        .map_err(|e| e.in_field(&k))?;
                    Ok((k, v))
                })?;
                Value::Object(pairs.into_iter().collect::<Map<String, Value>>())
            }
            RNode::Record { steps, defaults } => {
                let mut m = Map::new();
                for s in steps.iter() {
                    match s {
                        Step::Read { name, r } => {
                            let v = self.node(*r, w, depth + 1).map_err(|e| e.in_field(name))?;
                            m.insert(name.to_string(), v);
                        }
                        Step::Skip(wn) => skip_node(plan, *wn, w, depth + 1)?,
                    }
                }
                for (k, v) in defaults.iter() {
                    m.insert(k.to_string(), v.clone());
                }
                Value::Object(m)
            }
            RNode::WriterUnion(branches) => {
                let i = w.r.union_index(branches.len())?;
                match &branches[i] {
                    Ok(r) => return self.node(*r, w, depth + 1),
                    Err(msg) => {
                        return Err(Box::new(CodecError::Unresolvable {
                            path: String::new(),
                            message: msg.to_string(),
                        }));
                    }
                }
            }
            RNode::Pending => {
                return Err(Box::new(CodecError::InvalidSchema(
                    "incomplete resolving plan".into(),
                )));
            }
        })
    }
}
