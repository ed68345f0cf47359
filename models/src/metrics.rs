//! Ranking and classification metrics (binary relevance).

use std::collections::HashSet;

/// Hits of `ranked[..k]` in `relevant`, divided by `k`.
pub fn precision_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    hits(ranked, relevant, k) as f64 / k as f64
}

/// Hits of `ranked[..k]` in `relevant`, divided by `|relevant|`.
pub fn recall_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    hits(ranked, relevant, k) as f64 / relevant.len() as f64
}

/// DCG of `ranked[..k]` (gain 1 per hit, discount `log2(position + 1)`,
/// positions from 1) over the DCG of the ideal ranking.
pub fn ndcg_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    let discount = |position: usize| 1.0 / ((position + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, item)| relevant.contains(item))
        .map(|(p, _)| discount(p))
        .sum();
    let ideal: f64 = (0..relevant.len().min(k)).map(discount).sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

fn hits(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> usize {
    ranked
        .iter()
        .take(k)
        .filter(|item| relevant.contains(item))
        .count()
}

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, ties counting one half (Mann–Whitney U with
/// average ranks). `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len());
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start..end (1-based: start+1 ..= end) share their average.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        rank_sum += average_rank * order[start..end].iter().filter(|&&i| labels[i]).count() as f64;
        start = end;
    }
    let u = rank_sum - (positives * (positives + 1)) as f64 / 2.0;
    Some(u / (positives * negatives) as f64)
}

/// Mean binary cross-entropy, probabilities clipped to [1e-15, 1 - 1e-15].
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    assert_eq!(probabilities.len(), labels.len());
    if labels.is_empty() {
        return 0.0;
    }
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    total / labels.len() as f64
}

/// Mean top-k metrics over users.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct TopK {
    #[serde(rename = "precision@10")]
    pub precision: f64,
    #[serde(rename = "recall@10")]
    pub recall: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg: f64,
    /// Users averaged over (those with at least one held-out item).
    pub users: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> HashSet<u32> {
        items.iter().copied().collect()
    }

    #[test]
    fn top_k_metrics_match_hand_computed_cases() {
        // Ranked 1..=5; relevant {2, 5, 9}; hits at positions 2 and 5.
        let ranked = [1, 2, 3, 4, 5];
        let relevant = set(&[2, 5, 9]);
        assert_eq!(precision_at_k(&ranked, &relevant, 5), 2.0 / 5.0);
        assert_eq!(recall_at_k(&ranked, &relevant, 5), 2.0 / 3.0);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 6f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((ndcg_at_k(&ranked, &relevant, 5) - dcg / idcg).abs() < 1e-12);
        // Only the first k count.
        assert_eq!(precision_at_k(&ranked, &relevant, 1), 0.0);
        assert_eq!(ndcg_at_k(&ranked, &relevant, 1), 0.0);
        // A perfect ranking scores 1.
        assert!((ndcg_at_k(&[2, 5, 9, 1], &relevant, 10) - 1.0).abs() < 1e-12);
        // Fewer than k recommendations: precision still divides by k.
        assert_eq!(precision_at_k(&[2], &relevant, 10), 0.1);
        assert_eq!(ndcg_at_k(&[], &relevant, 10), 0.0);
    }

    #[test]
    fn auc_and_log_loss_match_hand_computed_cases() {
        assert_eq!(auc(&[0.9, 0.8, 0.1], &[true, false, false]), Some(1.0));
        assert_eq!(auc(&[0.1, 0.8, 0.9], &[true, false, false]), Some(0.0));
        // Positives 0.8, 0.4; negatives 0.6, 0.4: pairs (0.8>0.6) (0.8>0.4) (0.4<0.6) (0.4=0.4 → ½) = 2.5/4.
        assert_eq!(
            auc(&[0.8, 0.4, 0.6, 0.4], &[true, true, false, false]),
            Some(0.625)
        );
        assert_eq!(auc(&[0.3, 0.2], &[true, true]), None);
        let expected = -(0.8f64.ln() + 0.6f64.ln()) / 2.0;
        assert!((log_loss(&[0.8, 0.4], &[true, false]) - expected).abs() < 1e-12);
        assert!(log_loss(&[0.0], &[true]).is_finite(), "clipped");
    }
}
