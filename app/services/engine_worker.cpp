#include "app/services/engine_worker.h"

#include <QDir>
#include <QFileInfo>
#include <algorithm>
#include <cstdint>

#include "app/services/context_fit.h"
#include "app/services/demo_model.h"
#include "app/services/generation_defaults.h"
#include "app/services/model_library.h"
#include "app/services/vision_input.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/generation.h"
#include "engine/observe/routing_trace.h"
#include "engine/tokenizer/streaming_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/lora_adapter.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_backend.h"
#endif

namespace mwb::app {

namespace {

QString text_of(const Error& error) { return QString::fromStdString(error.message); }

}  // namespace

EngineWorker::EngineWorker(InspectorFeed* inspector, QObject* parent) : QObject(parent), inspector_(inspector) {}
EngineWorker::~EngineWorker() = default;

void EngineWorker::requestStop(quint64 request_id) {
    // Paired with generate(): whichever of the two stores comes second sees the other's.
    quint64 stopped = stop_up_to_id_.load();
    while (stopped < request_id && !stop_up_to_id_.compare_exchange_weak(stopped, request_id)) {
    }
    const quint64 running = running_request_id_.load();
    if (running != 0 && running <= request_id) cancel_generation_.store(true);
}

void EngineWorker::requestCancelLoad() { cancel_load_.store(true); }
void EngineWorker::clearCancelLoad() { cancel_load_.store(false); }

template <class Body, class OnError>
void EngineWorker::guarded(Body body, OnError on_error) {
    try {
        body();
    } catch (const std::bad_alloc&) {
        on_error(tr("The computer ran out of memory."));
    } catch (const std::exception& error) {
        on_error(tr("Internal error in the engine: %1").arg(QString::fromUtf8(error.what())));
    }
}

void EngineWorker::loadModel(const QString& directory, qint64 context_length, int threads, bool cuda, const QString& tokenizer_directory) {
    emit loadStarted(directory);
    guarded([&] { finish_load(directory, tokenizer_directory, context_length, threads, cuda, 0.0); },
            [&](const QString& message) { emit loadFailed(directory, message); });
}

void EngineWorker::loadDemoModel(const QString& directory, const QJsonObject& config, quint64 seed, qint64 context_length, int threads) {
    guarded([&] { load_demo_model(directory, config, seed, context_length, threads); },
            [&](const QString& message) { emit loadFailed(directory, message); });
}

void EngineWorker::load_demo_model(const QString& directory, const QJsonObject& config, quint64 seed, qint64 context_length, int threads) {
    emit loadStarted(directory);
    emit loadProgress(0.0, tr("Creating the demo model"));
    auto created = ensure_demo_model(directory, {config, seed},
                                     [this](double f) { emit loadProgress(0.5 * f, tr("Creating the demo model")); }, &cancel_load_);
    if (load_cancelled()) {
        emit loadCancelled(directory);
        return;
    }
    if (!created) {
        emit loadFailed(directory, tr("Could not create the demo model: %1").arg(text_of(created.error())));
        return;
    }
    finish_load(directory, {}, context_length, threads, false, 0.5);
}

void EngineWorker::finish_load(const QString& directory, const QString& tokenizer_directory, qint64 context_length, int threads, bool cuda,
                               double progress_start) {
    auto progress = [&](double f, const QString& stage) { emit loadProgress(progress_start + (1.0 - progress_start) * f, stage); };
    auto fail = [&](const QString& message) { emit loadFailed(directory, message); };

#ifndef MWB_HAVE_CUDA
    if (cuda) {
        fail(tr("This build of MoE Workbench has no CUDA backend (the CUDA toolkit was not found when it was built); "
                "choose CPU as the device on the Models page."));
        return;
    }
#endif
    if (!QFileInfo(directory).isDir()) {
        fail(tr("The model folder %1 does not exist.").arg(directory));
        return;
    }
    progress(0.05, tr("Reading config.json and mapping the weights"));
    auto graph = load_model_graph(directory.toStdString());
    if (!graph) {
        fail(tr("Cannot load the model in %1: %2").arg(directory, text_of(graph.error())));
        return;
    }
    if (load_cancelled()) {
        emit loadCancelled(directory);
        return;
    }
    auto shared_graph = std::make_shared<const ModelGraph>(std::move(graph.value()));

    progress(0.55, tr("Loading the tokenizer"));
    const QString tokenizer_source = tokenizer_directory.isEmpty() ? directory : tokenizer_directory;
    auto tokenizer = tok::Tokenizer::load(tokenizer_source.toStdString());
    if (!tokenizer) {
        fail(tokenizer_directory.isEmpty()
                 ? tr("Cannot load the tokenizer of %1: %2. If the tokenizer is elsewhere, choose its folder on the Models page.")
                       .arg(directory, text_of(tokenizer.error()))
                 : tr("Cannot load the tokenizer chosen for %1 from %2: %3").arg(directory, tokenizer_directory, text_of(tokenizer.error())));
        return;
    }
    if (tokenizer->vocab_size() > size_t(shared_graph->config.vocab_size)) {
        fail(tr("The tokenizer has %1 tokens but the model only %2: tokenizer.json does not belong to this model.")
                 .arg(tokenizer->vocab_size())
                 .arg(shared_graph->config.vocab_size));
        return;
    }
    if (load_cancelled()) {
        emit loadCancelled(directory);
        return;
    }

    const qint64 model_context = shared_graph->config.max_position_embeddings;
    qint64 context = context_length > 0 ? context_length : std::min<qint64>(model_context, LoadOptions::kDefaultContextCap);
    if (model_context > 0) context = std::min(context, model_context);
    progress(0.8, tr("Reserving the KV cache for %1 tokens").arg(context));
    std::unique_ptr<Backend> backend;
#ifdef MWB_HAVE_CUDA
    if (cuda) {
        auto made = make_cuda_backend(shared_graph);
        if (!made) {
            fail(tr("Cannot start the CUDA backend: %1. Choose CPU as the device on the Models page.").arg(text_of(made.error())));
            return;
        }
        backend = std::move(made.value());
    }
#endif
    if (!backend) backend = make_cpu_backend(shared_graph, threads);
    if (Status status = backend->reserve_cache(1, context); !status) {
        fail(tr("Cannot reserve the KV cache for %1 tokens: %2. Choose a shorter context on the Models page.")
                 .arg(context)
                 .arg(text_of(status.error())));
        return;
    }

    if (!adapter_.empty()) {  // it belonged to the model before
        adapter_.clear();
        emit adapterChanged({});
    }
    std::unique_ptr<VisionInput> vision;
    if (shared_graph->config.vision_language) {
        progress(0.9, tr("Loading the vision tower"));
        auto loaded = VisionInput::load(shared_graph, directory, backend->name() == "cuda", threads);
        if (!loaded) {
            fail(tr("Cannot load the model's vision tower: %1").arg(text_of(loaded.error())));
            return;
        }
        vision = std::move(loaded.value());
    }
    graph_ = std::move(shared_graph);
    backend_ = std::move(backend);
    tokenizer_ = std::make_unique<tok::Tokenizer>(std::move(tokenizer.value()));
    vision_ = std::move(vision);
    info_ = {};
    info_.path = directory;
    info_.is_demo = is_demo_model(directory);
    info_.name = info_.is_demo ? tr("Demo model (random weights)") : QFileInfo(directory).fileName();
    info_.architecture = QString::fromStdString(architecture_name(graph_->config.architecture));
    info_.sees_images = vision_ != nullptr;
    info_.context_length = context;
    info_.max_context_length = model_context;
    const GenerationDefaults defaults = load_generation_defaults(directory);
    info_.default_sampling = defaults.sampling;
    info_.has_generation_config = defaults.problem.isEmpty() && QFileInfo::exists(QDir(directory).filePath("generation_config.json"));
    if (inspector_) inspector_->set_model(*graph_);
    progress(1.0, tr("Ready"));
    emit modelLoaded(info_);
}

void EngineWorker::unloadModel() {
    adapter_.clear();
    backend_.reset();
    tokenizer_.reset();
    vision_.reset();
    graph_.reset();
    info_ = {};
    emit modelUnloaded();
}

void EngineWorker::countTokens(quint64 request_id, const QList<ChatMessage>& messages) {
    if (!tokenizer_) return;
    guarded(
        [&] {
            // Each image counts as its tokens: a placeholder in the text, expanded.
            QList<ChatMessage> counted = messages;
            qint64 image_tokens = 0;
            const QStringList images = conversation_images(messages);
            if (!images.isEmpty() && vision_) {
                if (auto marked = vision_->with_placeholders(messages, *tokenizer_)) {
                    counted = *marked;
                    image_tokens = qint64(images.size()) * (vision_->tokens_per_image() - 1);
                }
            }
            auto prompt = conversation_ids(*tokenizer_, counted);
            if (prompt) emit tokensCounted(request_id, int(qint64(prompt->size()) + image_tokens), info_.context_length);
        },
        [](const QString&) {});  // a count is advisory: the reply itself reports the problem
}

void EngineWorker::inspect(quint64 request_id, const QList<ChatMessage>& messages, const QString& reply, qint64 attention_layer,
                           const QString& origin) {
    guarded([&] { inspect_message(request_id, messages, reply, attention_layer, origin); },
            [&](const QString& message) {
                if (inspector_) inspector_->capture_attention({});
                emit inspectionFailed(request_id, message);
            });
}

void EngineWorker::inspect_message(quint64 request_id, const QList<ChatMessage>& messages, const QString& reply, qint64 attention_layer,
                                   const QString& origin) {
    if (!backend_ || !tokenizer_ || !inspector_) {
        emit inspectionFailed(request_id, tr("No model is loaded: open one on the Models page."));
        return;
    }
    // Images: placeholders in the text, then the image tokens with the images' features, as for a reply.
    const QStringList images = conversation_images(messages);
    QList<ChatMessage> marked = messages;
    if (!images.isEmpty() && vision_) {
        auto with_placeholders = vision_->with_placeholders(messages, *tokenizer_);
        if (!with_placeholders) {
            emit inspectionFailed(request_id, text_of(with_placeholders.error()));
            return;
        }
        marked = *with_placeholders;
    }
    auto prompt = conversation_ids(*tokenizer_, marked);
    if (!prompt) {
        emit inspectionFailed(request_id, tr("Cannot build the prompt: %1").arg(text_of(prompt.error())));
        return;
    }
    GenerationRequest with_images;
    std::vector<InspectedImage> shown_images;
    if (!images.isEmpty() && vision_) {
        with_images.prompt = std::move(prompt.value());
        auto attached = vision_->attach(images, with_images);
        if (!attached) {
            emit inspectionFailed(request_id, tr("The image cannot be shown to the model: %1").arg(text_of(attached.error())));
            return;
        }
        shown_images = std::move(attached.value());
        *prompt = with_images.prompt;
    }
    std::vector<int32_t> reply_ids;
    if (!reply.isEmpty()) {
        auto encoded = tokenizer_->encode(reply.toStdString(), /*add_special_tokens=*/false);
        if (!encoded) {
            emit inspectionFailed(request_id, tr("Cannot encode the reply: %1").arg(text_of(encoded.error())));
            return;
        }
        reply_ids = std::move(encoded.value());
    }
    const qint64 tokens = qint64(prompt->size() + reply_ids.size());
    if (tokens > backend_->cache_capacity()) {
        emit inspectionFailed(request_id, tr("This message and the conversation before it take %1 tokens but the context holds %2: load "
                                             "the model with a longer context on the Models page to inspect it.")
                                              .arg(tokens)
                                              .arg(backend_->cache_capacity()));
        return;
    }
    auto token_text = [&](int32_t token) { return QString::fromStdString(tokenizer_->decode({&token, 1}, false)); };
    std::vector<QString> texts;
    for (int32_t token : *prompt) texts.push_back(token_text(token));
    inspector_->begin(*prompt, texts, origin, shown_images);
    for (int32_t token : reply_ids) inspector_->append_token(token, token_text(token));

    ForwardBatch batch;
    batch.tokens = std::move(prompt.value());
    batch.tokens.insert(batch.tokens.end(), reply_ids.begin(), reply_ids.end());
    batch.chunks = {{0, 0, tokens}};
    if (!adapter_.empty()) batch.adapter = &adapter_;
    batch.embedding_overrides = std::move(with_images.prompt_embeddings);
    inspector_->capture_attention({attention_layer});
    auto logits = backend_->forward(batch, inspector_);
    inspector_->capture_attention({});
    if (!logits) {
        emit inspectionFailed(request_id, tr("The forward pass failed: %1").arg(text_of(logits.error())));
        return;
    }
    emit inspectionFinished(request_id, int(tokens));
}

void EngineWorker::setAdapter(const QString& directory) {
    guarded(
        [&] {
            if (directory.isEmpty()) {
                adapter_.clear();
                emit adapterChanged({});
                return;
            }
            if (!graph_) {
                emit adapterFailed(directory, tr("Load the adapter's base model first."));
                return;
            }
            auto adapter = train::LoraAdapter::load(directory.toStdString(), *graph_);
            if (!adapter) {
                emit adapterFailed(directory, tr("This adapter does not fit the loaded model: %1").arg(text_of(adapter.error())));
                return;
            }
            adapter_ = adapter->deltas(*graph_);
            emit adapterChanged(directory);
        },
        [&](const QString& message) { emit adapterFailed(directory, message); });
}

Result<std::string> EngineWorker::greedy_reply(const std::vector<int32_t>& prompt, int max_new_tokens, const LowRankDeltas* adapter) {
    GenerationRequest request;
    request.prompt = prompt;
    request.sampling.temperature = 0;
    request.max_new_tokens = std::min<qint64>(max_new_tokens, backend_->cache_capacity() - qint64(prompt.size()));
    request.stop_tokens = stop_token_ids(*tokenizer_, graph_->config);
    request.adapter = adapter;
    auto result = mwb::generate(*backend_, request, {}, nullptr, &cancel_generation_);
    if (!result) return result.error();
    return tokenizer_->decode(result->tokens, true);
}

void EngineWorker::compareAdapter(quint64 request_id, const QList<ChatMessage>& messages, const QString& adapter_directory, int max_new_tokens) {
    guarded(
        [&] {
            auto fail = [&](const QString& message) { emit comparisonFailed(request_id, message); };
            if (!backend_ || !tokenizer_) return fail(tr("No model is loaded: open one on the Models page."));
            auto adapter = train::LoraAdapter::load(adapter_directory.toStdString(), *graph_);
            if (!adapter) return fail(tr("This adapter does not fit the loaded model: %1").arg(text_of(adapter.error())));
            const LowRankDeltas deltas = adapter->deltas(*graph_);
            auto prompt = conversation_ids(*tokenizer_, messages);
            if (!prompt) return fail(text_of(prompt.error()));
            if (qint64(prompt->size()) >= backend_->cache_capacity()) return fail(tr("The prompt does not fit the context."));
            cancel_generation_.store(false);
            auto base = greedy_reply(*prompt, max_new_tokens, nullptr);
            if (!base) return fail(text_of(base.error()));
            auto adapted = greedy_reply(*prompt, max_new_tokens, &deltas);
            if (!adapted) return fail(text_of(adapted.error()));
            emit comparisonFinished(request_id, QString::fromStdString(*base), QString::fromStdString(*adapted));
        },
        [&](const QString& message) { emit comparisonFailed(request_id, message); });
}

void EngineWorker::generate(const ChatRequest& chat) {
    guarded([&] { generate_reply(chat); },
            [&](const QString& message) {
                running_request_id_.store(0);
                emit generationFailed(chat.id, message);
            });
}

void EngineWorker::generate_reply(const ChatRequest& chat) {
    running_request_id_.store(chat.id);
    cancel_generation_.store(stop_up_to_id_.load() >= chat.id);
    if (!backend_ || !tokenizer_) {
        emit generationFailed(chat.id, tr("No model is loaded: open one on the Models page."));
        return;
    }
    const qint64 context = backend_->cache_capacity();
    // Images: a placeholder each in the text, which becomes the image's tokens once the prompt fits.
    const QStringList images = conversation_images(chat.messages);
    ChatRequest marked = chat;
    qint64 image_tokens = 0;
    if (!images.isEmpty()) {
        if (!vision_) {
            emit generationFailed(chat.id, tr("%1 cannot see images: open a DeepSeek-VL model to ask about pictures.").arg(info_.name));
            return;
        }
        auto with_placeholders = vision_->with_placeholders(chat.messages, *tokenizer_);
        if (!with_placeholders) {
            emit generationFailed(chat.id, text_of(with_placeholders.error()));
            return;
        }
        marked.messages = *with_placeholders;
        image_tokens = qint64(images.size()) * (vision_->tokens_per_image() - 1);
    }
    auto prompt = fit_prompt(*tokenizer_, marked, context - image_tokens);
    if (!prompt) {
        emit generationFailed(chat.id, text_of(prompt.error()));
        return;
    }
    GenerationRequest request;
    request.prompt = std::move(prompt->ids);
    std::vector<InspectedImage> shown_images;
    if (!images.isEmpty()) {
        auto attached = vision_->attach(images, request);
        if (!attached) {
            emit generationFailed(chat.id, tr("The image cannot be shown to the model: %1").arg(text_of(attached.error())));
            return;
        }
        shown_images = std::move(attached.value());
    }
    const qint64 prompt_tokens = qint64(request.prompt.size());
    emit generationStarted(chat.id, int(prompt_tokens), prompt->note);

    request.sampling = chat.sampling;
    request.max_new_tokens = std::min<qint64>(std::max(chat.sampling.max_new_tokens, 1), context - prompt_tokens);
    request.stop_tokens = stop_token_ids(*tokenizer_, graph_->config);
    if (!adapter_.empty()) request.adapter = &adapter_;

    RoutingTrace routing;
    ForwardObserverGroup observers({graph_->config.moe ? &routing : nullptr, inspector_});
    auto token_text = [&](int32_t token) { return QString::fromStdString(tokenizer_->decode({&token, 1}, false)); };
    if (inspector_) {
        std::vector<QString> texts;
        for (int32_t token : request.prompt) texts.push_back(token_text(token));
        inspector_->begin(request.prompt, texts, {}, shown_images);
    }
    tok::StreamingDetokenizer detokenizer(*tokenizer_, /*skip_special_tokens=*/true);
    std::string text;
    auto on_token = [&](int32_t token) {
        if (inspector_) inspector_->append_token(token, token_text(token));
        const std::string piece = detokenizer.push(token);
        if (!piece.empty()) {
            text += piece;
            emit tokenText(chat.id, QString::fromStdString(piece));
        }
        return !cancel_generation_.load();  // a stop during this token ends the reply here, without another forward pass
    };
    auto result = mwb::generate(*backend_, request, on_token, &observers, &cancel_generation_);
    running_request_id_.store(0);
    if (!result) {
        emit generationFailed(chat.id, tr("Generation failed: %1").arg(text_of(result.error())));
        return;
    }
    const std::string rest = detokenizer.finish();
    if (!rest.empty()) {
        text += rest;
        emit tokenText(chat.id, QString::fromStdString(rest));
    }
    GenerationStats stats;
    stats.prompt_tokens = int(result->timings.prompt_tokens);
    stats.generated_tokens = int(result->timings.generated_tokens);
    stats.time_to_first_token_s = result->timings.time_to_first_token_s;
    stats.prefill_tokens_per_s = result->timings.prefill_tokens_per_s();
    stats.decode_tokens_per_s = result->timings.decode_tokens_per_s();
    stats.finish_reason = QString::fromStdString(finish_reason_name(result->finish));
    const RoutingSummary summary =
        graph_->config.moe ? routing_summary_of(load_matrix(routing.records(), graph_->config.moe->n_routed_experts)) : RoutingSummary{};
    emit generationFinished(chat.id, QString::fromStdString(text), stats, summary);
}

quint64 EngineHost::inspect(const QList<ChatMessage>& messages, const QString& reply, qint64 attention_layer, const QString& origin) {
    const quint64 id = next_request_id_++;
    QMetaObject::invokeMethod(worker_, "inspect", Qt::QueuedConnection, Q_ARG(quint64, id), Q_ARG(QList<mwb::app::ChatMessage>, messages),
                              Q_ARG(QString, reply), Q_ARG(qint64, attention_layer), Q_ARG(QString, origin));
    return id;
}

void EngineHost::setAdapter(const QString& directory) {
    QMetaObject::invokeMethod(worker_, "setAdapter", Qt::QueuedConnection, Q_ARG(QString, directory));
}

quint64 EngineHost::compareAdapter(const QList<ChatMessage>& messages, const QString& adapter_directory, int max_new_tokens) {
    const quint64 id = next_request_id_++;
    QMetaObject::invokeMethod(worker_, "compareAdapter", Qt::QueuedConnection, Q_ARG(quint64, id), Q_ARG(QList<mwb::app::ChatMessage>, messages),
                              Q_ARG(QString, adapter_directory), Q_ARG(int, max_new_tokens));
    return id;
}

void register_service_metatypes() {
    qRegisterMetaType<ChatMessage>();
    qRegisterMetaType<QList<ChatMessage>>();
    qRegisterMetaType<SamplingSettings>();
    qRegisterMetaType<RoutingSummary>();
    qRegisterMetaType<GenerationStats>();
    qRegisterMetaType<ChatRequest>();
    qRegisterMetaType<ContextOverflow>();
    qRegisterMetaType<LoadedModelInfo>();
}

EngineHost::EngineHost(QObject* parent) : QObject(parent) {
    register_service_metatypes();
    thread_.setObjectName("mwb-engine");
    worker_ = new EngineWorker(&inspector_);
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    thread_.start();
}

EngineHost::~EngineHost() {
    worker_->requestCancelLoad();
    worker_->requestStop(next_request_id_ - 1);
    thread_.quit();
    thread_.wait();
}

void EngineHost::load(const QString& directory, const LoadOptions& options) {
    worker_->clearCancelLoad();
    QMetaObject::invokeMethod(worker_, "loadModel", Qt::QueuedConnection, Q_ARG(QString, directory),
                              Q_ARG(qint64, options.context_length), Q_ARG(int, options.threads), Q_ARG(bool, options.cuda),
                              Q_ARG(QString, options.tokenizer_directory));
}

void EngineHost::loadDemo(const QString& directory, const QJsonObject& config, quint64 seed, const LoadOptions& options) {
    worker_->clearCancelLoad();
    QMetaObject::invokeMethod(worker_, "loadDemoModel", Qt::QueuedConnection, Q_ARG(QString, directory), Q_ARG(QJsonObject, config),
                              Q_ARG(quint64, seed), Q_ARG(qint64, options.context_length), Q_ARG(int, options.threads));
}

void EngineHost::cancelLoad() { worker_->requestCancelLoad(); }

void EngineHost::unload() { QMetaObject::invokeMethod(worker_, "unloadModel", Qt::QueuedConnection); }

quint64 EngineHost::generate(QList<ChatMessage> messages, const SamplingSettings& sampling, ContextOverflow overflow,
                             const QString& continuation) {
    ChatRequest request{next_request_id_++, std::move(messages), sampling, overflow, continuation};
    QMetaObject::invokeMethod(worker_, "generate", Qt::QueuedConnection, Q_ARG(mwb::app::ChatRequest, request));
    return request.id;
}

void EngineHost::stop(quint64 request_id) { worker_->requestStop(request_id); }

quint64 EngineHost::countTokens(const QList<ChatMessage>& messages) {
    const quint64 id = next_request_id_++;
    QMetaObject::invokeMethod(worker_, "countTokens", Qt::QueuedConnection, Q_ARG(quint64, id),
                              Q_ARG(QList<mwb::app::ChatMessage>, messages));
    return id;
}

}  // namespace mwb::app
