//! Builds the tree from yaml-rust2's parser events: anchors and aliases
//! expanded and charged as go-yaml charges them, merges applied where they
//! stand, the last of equal keys kept, depth and size bounded.

use yaml_rust2::parser::{Event, EventReceiver};
use yaml_rust2::scanner::TScalarStyle;

use super::node::{key_of, Key, Node};
use super::scalars::{scalar, tag_name, MERGE_TAG};
use super::{Error, Limits, MAX_DEPTH};

/// A node, what decoding it cost (in go-yaml's count of decode steps), and
/// how deep it nests.
struct Decoded {
    node: Node,
    cost: usize,
    height: usize,
}

pub(super) struct Builder {
    limits: Limits,
    open: Vec<Open>,
    /// Completed anchored nodes, by yaml-rust2's anchor id (a redefinition
    /// gets a new id), each with its cost (charged again at each alias) and
    /// height (an alias must not nest deeper than a node written out could).
    anchors: Vec<(usize, Decoded)>,
    document: Option<Node>,
    /// The first error; from then on events are ignored.
    error: Option<Error>,
    /// go-yaml's counters: every decode step, and those made by aliases.
    decodes: usize,
    aliased: usize,
}

struct Open {
    anchor: usize,
    cost: usize,
    /// Of the deepest child so far.
    height: usize,
    kind: OpenKind,
}

enum OpenKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<PendingKey>,
    },
}

enum PendingKey {
    Key(Key),
    /// `<<`: the value is merged into the mapping.
    Merge,
}

/// Where a value came from: a merge cares whether it is an alias.
#[derive(Clone, Copy, PartialEq)]
enum Origin {
    Written,
    Alias,
}

impl EventReceiver for Builder {
    fn on_event(&mut self, event: Event) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.event(event) {
            self.error = Some(e);
        }
    }
}

impl Builder {
    pub(super) fn new(limits: Limits) -> Builder {
        Builder {
            limits,
            open: Vec::new(),
            anchors: Vec::new(),
            document: None,
            error: None,
            decodes: 0,
            aliased: 0,
        }
    }

    /// The document built, once the parser is done: null if it was empty.
    pub(super) fn finish(self) -> Result<Node, Error> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.document.unwrap_or(Node::Null)),
        }
    }

    fn event(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                // A key is read as a key; only a plain `<<` (or `!!merge`) merges.
                let merge_key = self.expects_key()
                    && value == "<<"
                    && match &tag {
                        None => style == TScalarStyle::Plain,
                        Some(tag) => tag_name(tag) == MERGE_TAG,
                    };
                if merge_key {
                    return self.merge_key();
                }
                self.charge(1)?;
                let node = scalar(value, style, tag.as_ref())?;
                let decoded = Decoded {
                    node,
                    cost: 1,
                    height: 0,
                };
                self.complete(decoded, anchor, Origin::Written)
            }
            Event::SequenceStart(anchor, _) => self.start(anchor, OpenKind::Seq(Vec::new())),
            Event::MappingStart(anchor, _) => self.start(
                anchor,
                OpenKind::Map {
                    entries: Vec::new(),
                    key: None,
                },
            ),
            Event::SequenceEnd | Event::MappingEnd => match self.open.pop() {
                Some(open) => {
                    let node = match open.kind {
                        OpenKind::Seq(items) => Node::Seq(items),
                        OpenKind::Map { entries, .. } => Node::Map(last_wins(entries)),
                    };
                    let decoded = Decoded {
                        node,
                        cost: open.cost,
                        height: open.height + 1,
                    };
                    self.complete(decoded, open.anchor, Origin::Written)
                }
                None => Ok(()),
            },
            Event::Alias(id) => self.alias(id),
            _ => Ok(()),
        }
    }

    fn start(&mut self, anchor: usize, kind: OpenKind) -> Result<(), Error> {
        if self.open.len() >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        self.charge(1)?;
        self.open.push(Open {
            anchor,
            cost: 1,
            height: 0,
            kind,
        });
        Ok(())
    }

    /// Whether the next node is a mapping's key.
    fn expects_key(&self) -> bool {
        matches!(
            self.open.last(),
            Some(Open {
                kind: OpenKind::Map { key: None, .. },
                ..
            })
        )
    }

    fn merge_key(&mut self) -> Result<(), Error> {
        if let Some(Open {
            kind: OpenKind::Map { key, .. },
            ..
        }) = self.open.last_mut()
        {
            *key = Some(PendingKey::Merge);
        }
        Ok(())
    }

    /// An alias is its anchor's node decoded again, at its cost again, and
    /// counted as aliased: go-yaml's rule refuses a document whose decoding is
    /// mostly aliases once it is past 1,000 steps (a "billion laughs").
    fn alias(&mut self, id: usize) -> Result<(), Error> {
        let Some(at) = self.anchors.iter().rposition(|(a, _)| *a == id) else {
            // yaml-rust2 refuses unknown anchors; an anchor still open is one
            // whose node would contain itself.
            return Err(Error::Recursive);
        };
        let (cost, height) = (self.anchors[at].1.cost, self.anchors[at].1.height);
        if self.open.len() + height > MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        // Counted before it is copied: a refused expansion is never built.
        self.aliased += cost;
        self.charge(1 + cost)?;
        let decoded = Decoded {
            node: self.anchors[at].1.node.clone(),
            cost: 1 + cost,
            height,
        };
        self.complete(decoded, 0, Origin::Alias)
    }

    fn charge(&mut self, steps: usize) -> Result<(), Error> {
        self.decodes += steps;
        if self.decodes > self.limits.max_values {
            return Err(Error::TooLarge(self.limits.max_values));
        }
        // go-yaml v2 (decode.go, `allowedAliasRatio`): past 1,000 steps and 100
        // aliased ones, at most 99 % may come from aliases (the ratio falls
        // further past 400,000 steps, beyond any limit here).
        if self.aliased > 100 && self.decodes > 1000 && self.aliased * 100 > self.decodes * 99 {
            return Err(Error::ExcessiveAliasing);
        }
        Ok(())
    }

    fn complete(&mut self, decoded: Decoded, anchor: usize, origin: Origin) -> Result<(), Error> {
        if anchor > 0 {
            let copy = Decoded {
                node: decoded.node.clone(),
                ..decoded
            };
            self.anchors.push((anchor, copy));
        }
        let Some(parent) = self.open.last_mut() else {
            self.document.get_or_insert(decoded.node);
            return Ok(());
        };
        parent.cost += decoded.cost;
        parent.height = parent.height.max(decoded.height);
        match &mut parent.kind {
            OpenKind::Seq(items) => items.push(decoded.node),
            OpenKind::Map { entries, key } => match key.take() {
                None => *key = Some(PendingKey::Key(key_of(decoded.node)?)),
                Some(PendingKey::Key(key)) => entries.push((key, decoded.node)),
                Some(PendingKey::Merge) => merge(entries, decoded.node, origin)?,
            },
        }
        Ok(())
    }
}

/// A mapping's entries in the order written, merges included, reduced to the
/// last value of each key, as Go's map keeps it. Sorting first keeps this
/// quick for a mapping with many keys.
fn last_wins(mut entries: Vec<(Key, Node)>) -> Vec<(Key, Node)> {
    if entries.len() < 2 {
        return entries;
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
    let mut keep = vec![false; entries.len()];
    for pair in order.windows(2) {
        if entries[pair[0]].0 != entries[pair[1]].0 {
            keep[pair[0]] = true;
        }
    }
    if let Some(&last) = order.last() {
        keep[last] = true;
    }
    let mut at = 0;
    entries.retain(|_| {
        at += 1;
        keep[at - 1]
    });
    entries
}

/// go-yaml v2's merge: a mapping's keys are set where `<<` stands (so later
/// keys override them, and they override earlier ones); from a list of
/// mappings the last is set first, so the first wins. An alias must name a
/// mapping itself, not a list of them.
fn merge(entries: &mut Vec<(Key, Node)>, value: Node, origin: Origin) -> Result<(), Error> {
    match value {
        Node::Map(merged) => entries.extend(merged),
        Node::Seq(list) if origin == Origin::Written => {
            for item in list.into_iter().rev() {
                let Node::Map(merged) = item else {
                    return Err(Error::MergeNeedsMapping);
                };
                entries.extend(merged);
            }
        }
        _ => return Err(Error::MergeNeedsMapping),
    }
    Ok(())
}
