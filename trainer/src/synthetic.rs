//! A small generated data set in MovieLens' format (RecBole atomic files),
//! for tests and examples that must not depend on the real download: two
//! taste groups, odd users liking the first half of the items (Action),
//! even users the second half (Romance); each user rates 12 items an hour
//! apart, every sixth one from the other group, rated low. A user's own-group
//! items step through their group three at a time from a user-specific
//! start, so items three apart co-occur: there is structure to learn, and
//! the held-out items are mostly of the user's own group.

use std::path::Path;

/// Writes `ml-100k.{user,item,inter}` for `users` users and
/// `2 × items_per_group` items into `dir`.
pub fn write_movielens(dir: &Path, users: u32, items_per_group: u32) -> std::io::Result<()> {
    let mut user_file =
        String::from("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n");
    for u in 1..=users {
        let gender = if u % 2 == 0 { "F" } else { "M" };
        user_file += &format!("{u}\t{}\t{gender}\tother\t{}0000\n", 18 + u % 40, u % 10);
    }
    let mut item_file =
        String::from("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n");
    for i in 1..=2 * items_per_group {
        let genres = if i <= items_per_group {
            "Action Thriller"
        } else {
            "Romance Drama"
        };
        item_file += &format!("{i}\tFilm {i}\t{}\t{genres}\n", 1980 + i % 18);
    }
    let mut inter = String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
    for u in 1..=users {
        let (own, other) = if u % 2 == 1 {
            (1, 1 + items_per_group)
        } else {
            (1 + items_per_group, 1)
        };
        let mut rated: Vec<u32> = Vec::new();
        for step in 0..12u32 {
            let (item, rating) = if step % 6 == 5 {
                (other + (u + step) % items_per_group, 2)
            } else {
                (
                    own + (u * 7 + step * 3) % items_per_group,
                    4 + (u + step) % 2,
                )
            };
            if rated.contains(&item) {
                continue;
            }
            rated.push(item);
            // Distinct times: an hour per step, seven seconds per user.
            let time = 880_000_000 + i64::from(step) * 3_600 + i64::from(u) * 7;
            inter += &format!("{u}\t{item}\t{rating}\t{time}\n");
        }
    }
    std::fs::write(dir.join("ml-100k.user"), user_file)?;
    std::fs::write(dir.join("ml-100k.item"), item_file)?;
    std::fs::write(dir.join("ml-100k.inter"), inter)
}
