//! A fitted booster laid out for serving: every node of every tree in one
//! flat array of 32-byte nodes (split feature, threshold, the three
//! children, a leaf's weight), leaves pointing at themselves, so a row walks each tree for the tree's depth with no
//! test for "is this a leaf" and the child picked by index arithmetic, not
//! a branch the CPU mispredicts. Rows are scored tree by tree (a tree's
//! nodes stay in cache while every row walks it), and each row's score is
//! summed in forust's order (base score, then trees in order), so the
//! scores equal forust's `predict` bit for bit.

use forust_ml::gradientbooster::GradientBooster;

/// Rows walking a tree together.
const LANES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
struct Node {
    threshold: f64,
    /// A leaf's weight (zero for split nodes).
    value: f64,
    feature: u32,
    /// Below the threshold, at or above it, missing; a leaf's are itself.
    children: [u32; 3],
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct FlatForest {
    base_score: f64,
    nodes: Vec<Node>,
    /// Each tree's root node and the number of steps that reach any leaf.
    trees: Vec<(u32, u32)>,
    /// The highest feature index a split reads.
    max_feature: usize,
}

impl FlatForest {
    /// The booster's prediction trees, or `None` when it marks missing
    /// values with something else than NaN (forust's default, the only
    /// marker the branch-free walk reads).
    pub(super) fn of(booster: &GradientBooster) -> Option<Self> {
        if !booster.missing.is_nan() {
            return None;
        }
        let used = booster.prediction_iteration.unwrap_or(booster.trees.len());
        let mut forest = FlatForest {
            base_score: booster.base_score,
            nodes: Vec::new(),
            trees: Vec::new(),
            max_feature: 0,
        };
        for tree in booster.trees.iter().take(used) {
            let offset = u32::try_from(forest.nodes.len()).ok()?;
            let index = |i: usize| u32::try_from(i).ok().map(|i| i + offset);
            let mut depth = 0;
            for node in &tree.nodes {
                let own = index(node.num)?;
                forest.nodes.push(if node.is_leaf {
                    Node {
                        threshold: 0.0,
                        value: f64::from(node.weight_value),
                        feature: 0,
                        children: [own; 3],
                    }
                } else {
                    forest.max_feature = forest.max_feature.max(node.split_feature);
                    Node {
                        threshold: node.split_value,
                        value: 0.0,
                        feature: u32::try_from(node.split_feature).ok()?,
                        children: [
                            index(node.left_child)?,
                            index(node.right_child)?,
                            index(node.missing_node)?,
                        ],
                    }
                });
                depth = depth.max(node.depth);
            }
            // Nodes are stored by number: a node's index is its number.
            if tree.nodes.iter().enumerate().any(|(i, n)| i != n.num) {
                return None;
            }
            forest.trees.push((offset, u32::try_from(depth).ok()?));
        }
        Some(forest)
    }

    /// The raw scores (log-odds) of rows of equal length; `None` when a
    /// row is shorter than a split feature.
    pub(super) fn predict(&self, rows: &[&[f64]]) -> Option<Vec<f64>> {
        if rows.iter().any(|r| r.len() <= self.max_feature) && !self.trees.is_empty() {
            return None;
        }
        let mut scores = vec![self.base_score; rows.len()];
        for &(root, depth) in &self.trees {
            // Rows walk in groups whose walks are independent, so the CPU
            // overlaps their node loads.
            let mut groups = scores.chunks_exact_mut(LANES).zip(rows.chunks_exact(LANES));
            for (group_scores, group) in &mut groups {
                let mut nodes = [root as usize; LANES];
                for _ in 0..depth {
                    for (node, row) in nodes.iter_mut().zip(group) {
                        *node = self.step(*node, row);
                    }
                }
                for (score, node) in group_scores.iter_mut().zip(nodes) {
                    *score += self.nodes[node].value;
                }
            }
            let done = rows.len() - rows.len() % LANES;
            for (score, row) in scores[done..].iter_mut().zip(&rows[done..]) {
                let mut node = root as usize;
                for _ in 0..depth {
                    node = self.step(node, row);
                }
                *score += self.nodes[node].value;
            }
        }
        Some(scores)
    }

    /// The child of `node` that `row` goes to.
    #[inline(always)]
    fn step(&self, node: usize, row: &[f64]) -> usize {
        let n = &self.nodes[node];
        let x = row[n.feature as usize];
        // 0: below, 1: at or above, 2: missing (NaN is never `>=`).
        let pick = 2 * usize::from(x.is_nan()) + usize::from(x >= n.threshold);
        n.children[pick] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forust_ml::objective::ObjectiveType;
    use forust_ml::Matrix;

    const COLS: usize = 4;

    /// Rows with a missing value in about one cell in seven, and a label
    /// that depends on both the values and their absence.
    fn data(rows: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let x: Vec<Vec<f64>> = (0..rows)
            .map(|r| {
                (0..COLS)
                    .map(|c| match (r * 31 + c * 17) % 7 {
                        0 => f64::NAN,
                        _ => ((r * (c + 3) * 13) % 97) as f64 / 97.0,
                    })
                    .collect()
            })
            .collect();
        let y = x
            .iter()
            .map(|r| f64::from(u8::from(r[0].is_nan() || (r[1] > 0.5) != (r[2] > 0.3))))
            .collect();
        (x, y)
    }

    fn fitted(missing_branch: bool) -> GradientBooster {
        let (x, y) = data(600);
        let columns: Vec<f64> = (0..COLS)
            .flat_map(|c| x.iter().map(move |r| r[c]))
            .collect();
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(40)
            .set_max_depth(5)
            .set_create_missing_branch(missing_branch)
            .set_initialize_base_score(true);
        booster
            .fit_unweighted(&Matrix::new(&columns, x.len(), COLS), &y, None)
            .unwrap();
        booster
    }

    /// The rows to compare on: fresh rows, and rows sitting exactly on
    /// each split threshold (where `<` against `>=` matters).
    fn probes(booster: &GradientBooster) -> Vec<Vec<f64>> {
        let (mut rows, _) = data(900);
        for tree in &booster.trees {
            for node in tree.nodes.iter().filter(|n| !n.is_leaf) {
                let mut row = vec![0.25; COLS];
                row[node.split_feature] = node.split_value;
                rows.push(row);
            }
        }
        rows
    }

    #[test]
    fn scores_equal_forusts_bit_for_bit() {
        for missing_branch in [false, true] {
            let booster = fitted(missing_branch);
            let forest = FlatForest::of(&booster).expect("NaN marks missing values");
            let rows = probes(&booster);
            let columns: Vec<f64> = (0..COLS)
                .flat_map(|c| rows.iter().map(move |r| r[c]))
                .collect();
            let expected = booster.predict(&Matrix::new(&columns, rows.len(), COLS), false);
            let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
            let got = forest.predict(&refs).unwrap();
            let differing = expected
                .iter()
                .zip(&got)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differing, 0, "missing branch: {missing_branch}");
            assert!(
                expected.iter().any(|&s| (s - expected[0]).abs() > 1e-3),
                "the trees split"
            );
        }
    }

    #[test]
    fn a_row_too_short_for_a_split_is_refused() {
        let forest = FlatForest::of(&fitted(false)).unwrap();
        assert_eq!(forest.predict(&[&[0.1, 0.2][..]]), None);
        assert_eq!(forest.predict(&[]), Some(Vec::new()));
    }

    #[test]
    fn another_missing_marker_is_left_to_forust() {
        let mut booster = fitted(false);
        booster.missing = -1.0;
        assert!(FlatForest::of(&booster).is_none());
    }
}
