// DeepSeek-VL (DeepseekVLForConditionalGeneration): a SigLIP tower and a two-layer aligner turn an image into
// rows of the language model's embedding space, which take the place of the prompt's image tokens. The language
// model is a text architecture of its own (llama in the released models) stored under "model.language_model.";
// its graph is built by that architecture's file. The vision side lives in engine/vision and reads the same store.
#include "engine/model/model_graph.h"

namespace mwb {

Result<ModelGraph> build_deepseek_vl(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    if (!config.vision_language) return make_error("config.json: deepseek_vl needs text_config and vision_config");
    ModelConfig text = config;
    text.architecture = config.vision_language->text_architecture;
    text.vision_language.reset();
    TensorStore renamed = *store;
    renamed.rename_prefix("model.language_model.", "model.");
    auto graph = build_model_graph(text, std::make_shared<const TensorStore>(std::move(renamed)));
    if (!graph) return graph.error();
    graph->config = config;
    return graph;
}

}  // namespace mwb
