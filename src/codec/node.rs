//! The compiled plan's data: the node table an Avro schema is flattened into ([`Node`], [`Field`],
//! [`Cat`], the typed-path [`TypedMap`]) and [`Plan`], which holds it with each node's minimum size.
//! Shared by the compiler (`plan`) and every walker (`json`, `ser`, `de`, `resolve`, `typed`,
//! `json_stream`, `json_text`): they import this file and it imports none of them, so the compiler
//! can encode field defaults with `json` without a circle.
//!
//! Must not compile schemas (that is `plan`), and must not encode or decode records.

use std::sync::OnceLock;

pub(crate) type NodeId = u32;

/// What a value looks like from the outside, used to pick a union branch for an unwrapped value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Cat {
    Null = 0,
    Bool,
    /// An integral number that fits in i32.
    Int,
    /// An integral number beyond i32.
    Long,
    /// A non-integral number (or a float/double from a typed value).
    Float,
    Str,
    Bytes,
    Object,
    Array,
}
pub(crate) const CAT_COUNT: usize = 9;
pub(crate) const NO_BRANCH: u8 = u8::MAX;

#[derive(Debug)]
pub(crate) struct Field {
    pub name: Box<str>,
    pub aliases: Box<[Box<str>]>,
    pub node: NodeId,
    /// The field's default, already encoded with the field's schema (for unions: branch 0 and its value).
    pub default: Option<Box<[u8]>>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed {
        name: Box<str>,
        size: usize,
    },
    Enum {
        name: Box<str>,
        aliases: Box<[Box<str>]>,
        symbols: Box<[Box<str>]>,
        default: Option<u32>,
        typed: TypedMap,
    },
    Array {
        items: NodeId,
    },
    Map {
        values: NodeId,
    },
    Union {
        branches: Box<[NodeId]>,
        pick: [u8; CAT_COUNT],
    },
    Record {
        name: Box<str>,
        aliases: Box<[Box<str>]>,
        fields: Box<[Field]>,
        typed: TypedMap,
    },
    /// A named type still being compiled (only during compilation).
    Pending,
}

impl Node {
    /// The Avro type name of this node (`"record"`, `"union"`, …), for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Boolean => "boolean",
            Node::Int => "int",
            Node::Long => "long",
            Node::Float => "float",
            Node::Double => "double",
            Node::Bytes => "bytes",
            Node::String => "string",
            Node::Fixed { .. } => "fixed",
            Node::Enum { .. } => "enum",
            Node::Array { .. } => "array",
            Node::Map { .. } => "map",
            Node::Union { .. } => "union",
            Node::Record { .. } => "record",
            Node::Pending => "pending",
        }
    }

    /// A union branch's name, as Rust enum variants name branches: the short name of a named
    /// type, else the type name.
    pub(crate) fn branch_name(&self) -> &str {
        match self {
            Node::Fixed { name, .. } | Node::Enum { name, .. } | Node::Record { name, .. } => {
                name.rsplit('.').next().unwrap_or(name)
            }
            other => other.type_name(),
        }
    }
}

/// For the typed decode path: the first Rust type read through a record (enum) node remembers,
/// keyed by the address of its `&'static` field (variant) name list, which of its fields
/// (variants) each schema field (symbol) is, so later reads pass indices instead of comparing names.
#[derive(Debug, Default)]
pub(crate) struct TypedMap(OnceLock<(usize, usize, Box<[u32]>)>);

/// In a [`TypedMap`]: this schema field has no Rust counterpart.
pub(crate) const NO_INDEX: u32 = u32::MAX;

impl TypedMap {
    /// The schema-position → Rust-position map for the Rust name list `rust`, if it is the cached one.
    #[inline(always)]
    pub(crate) fn get<'a>(
        &'a self,
        rust: &'static [&'static str],
        names: impl Iterator<Item = &'a str>,
    ) -> Option<&'a [u32]> {
        let key = rust.as_ptr() as usize;
        let (k, len, map) = self.0.get_or_init(|| {
            let map = names
                .map(|n| {
                    rust.iter()
                        .position(|r| *r == n)
                        .map_or(NO_INDEX, |p| p as u32)
                })
                .collect();
            (key, rust.len(), map)
        });
        (*k == key && *len == rust.len()).then_some(&**map)
    }
}

/// A schema compiled into nodes; node 0 is the root.
#[derive(Debug)]
pub struct Plan {
    pub(crate) nodes: Vec<Node>,
    /// Minimum encoded size of each node's value, in bytes (bounds block counts on decode).
    pub(crate) min_size: Vec<usize>,
}

impl Plan {
    #[inline]
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        // Ids come only from the compiler, so they are always in range.
        &self.nodes[id as usize]
    }

    pub(crate) const ROOT: NodeId = 0;
}
